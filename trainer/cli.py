"""``python -m trainer train|export|evaluate|cas``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from genserve.cli import OneLineParser, positive_int

from .data import DEFAULT_DATA_DIR, DataError
from .recipes import MODELS, PROFILES, recipe_for

log = logging.getLogger("trainer")


def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=sorted(PROFILES), default="full",
                   help="training recipe: 'lecture' reproduces the lecture, 'quick' trains everything "
                        "in minutes on a CPU, 'full' (default) reaches the documented quality")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder of the four MNIST-shaped IDX files, gzip or raw (default: the bundled MNIST)")
    p.add_argument("--run-dir", type=Path, default=Path("runs"),
                   help="where checkpoints, metrics logs and pictures go (default: runs)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="training device (default: auto, CUDA when torch sees one)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--epochs", type=positive_int, help="override the profile's epoch count")
    p.add_argument("--batch-size", type=positive_int, help="override the profile's batch size")
    p.add_argument("--train-len", type=positive_int,
                   help="train on the first N training images (the lecture used 10000)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainer", description=__doc__ and
                           "Train genserve's generative models and export them to ONNX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("train", help="train one model or all of them")
    p.add_argument("--model", choices=(*MODELS, "all"), default="all", help="which model (default: all)")
    _add_training_args(p)

    p = sub.add_parser("export", help="train every model (or take --from-checkpoints) and write "
                                      "the ONNX model repository")
    _add_training_args(p)
    p.add_argument("--from-checkpoints", type=Path, metavar="DIR",
                   help="export the checkpoints of an earlier run (a --run-dir) instead of training")
    p.add_argument("--model-repository", type=Path, default=Path("models"),
                   help="the model repository to add versions to (default: models)")
    p.add_argument("--samples", type=positive_int, default=10_000,
                   help="generated images per generator for the manifest's metrics (default: 10000)")
    p.add_argument("--model", choices=(*MODELS, "all"), action="append",
                   help="train and export this model's run alone; repeat for several (default: all)")

    p = sub.add_parser("evaluate", help="measure the newest models of a model repository")
    p.add_argument("--model-repository", type=Path, default=Path("models"),
                   help="the model repository to evaluate (default: models)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder of the MNIST-shaped IDX files (default: the bundled MNIST)")
    p.add_argument("--samples", type=positive_int, default=10_000,
                   help="generated images per generator (default: 10000)")
    p.add_argument("--out", type=Path, help="also write the JSON here (default: print only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    p = sub.add_parser("cas", help="Classification Accuracy Score: train the classifier recipe on digits a "
                                   "served conditional model draws, test it on real MNIST")
    p.add_argument("--model", choices=("cgan", "cvae"), action="append", required=True,
                   help="the served conditional model; repeat for both")
    p.add_argument("--target", default="localhost:50051", help="the genserve server (default: localhost:50051)")
    p.add_argument("--n", type=positive_int, default=60_000, help="balanced digits drawn (default: 60000)")
    p.add_argument("--min-confidence", type=float, action="append",
                   help="also score digits drawn with this min_confidence; repeatable (default: 0.9)")
    p.add_argument("--no-real", action="store_true", help="skip the same recipe trained on real data")
    p.add_argument("--profile", choices=sorted(PROFILES), default="full",
                   help="the classifier's training recipe (default: full)")
    p.add_argument("--epochs", type=positive_int, help="override the recipe's epoch count")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="the real MNIST: its test split scores, its training split is the baseline")
    p.add_argument("--run-dir", type=Path, default=Path("runs/cas"), help="data, checkpoints (default: runs/cas)")
    p.add_argument("--out", type=Path, help="also write the JSON here (default: print only)")
    p.add_argument("--seed", type=int, default=0, help="the draws' and the training's seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _train_all(args, models, device: str) -> dict[str, Path]:
    from .train import train
    paths = {}
    for model in models:
        recipe = recipe_for(args.profile, model, epochs=args.epochs, batch_size=args.batch_size,
                            train_len=args.train_len)
        log.info("training %s: %s", model, recipe)
        paths[model] = train(model, recipe, args.run_dir, data_dir=args.data_dir, device=device,
                             seed=args.seed, resume=args.resume, progress=not args.no_progress)
    return paths


def run(args) -> int:
    if args.command in ("train", "export"):
        from . import distributed
        world, device = distributed.start(args.device)
        try:
            return _train_or_export(args, world, device)
        finally:
            distributed.stop()
    if args.command == "evaluate":
        from .evaluate import evaluate_repository
        report = evaluate_repository(args.model_repository, data_dir=args.data_dir,
                                     samples=args.samples, seed=args.seed)
        text = json.dumps(report, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    if args.command == "cas":
        return _cas(args)
    raise AssertionError(args.command)


def _cas(args) -> int:
    from .cas import real_accuracy, score
    levels = (None, *(args.min_confidence or [0.9]))
    common = dict(profile=args.profile, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                  progress=not args.no_progress)
    report = {"images": args.n, "seed": args.seed, "profile": args.profile,
              "models": [score(args.target, model, args.run_dir, args.n, min_confidence=levels, **common)
                         for model in dict.fromkeys(args.model)]}
    if not args.no_real:
        report["real"] = real_accuracy(args.run_dir, **common)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _train_or_export(args, world, device: str) -> int:
    if args.command == "train":
        _train_all(args, MODELS if args.model == "all" else (args.model,), device)
        log.info("checkpoints, metrics and pictures are in %s", args.run_dir)
        return 0
    if args.command == "export":
        from .export import export_repository
        runs = MODELS if not args.model or "all" in args.model else tuple(dict.fromkeys(args.model))
        run_dir = args.from_checkpoints
        if run_dir is None:
            _train_all(args, runs, device)
            run_dir = args.run_dir
        if world.is_main:  # one export, by rank 0
            for path in export_repository(run_dir, args.model_repository, data_dir=args.data_dir,
                                          samples=args.samples, runs=runs):
                print(path)
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("trainer").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    from client.errors import GenserveError
    from genserve.repository import RepositoryError

    from .checkpoints import CheckpointError
    from .export import ExportError
    try:
        return run(args)
    except (DataError, CheckpointError, ExportError, RepositoryError, ValueError, RuntimeError,
            GenserveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the last checkpoint written under {getattr(args, 'run_dir', '-')} is intact; "
              "continue with --resume", file=sys.stderr)
        return 130
