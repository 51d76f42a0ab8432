"""``python -m client sample|interpolate|grid|reconstruct|restyle|classify|denoise|models|dataset``:
the SDK from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genserve.cli import OneLineParser, non_negative_int, positive_int
from genserve.tokens import token_lines

from . import GenerativeClient, GenserveError, dataset
from .pictures import read_grid, write_grid


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m client", description="Call a genserve server.")
    parser.add_argument("--target", default="localhost:50051", help="server host:port (default: localhost:50051)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: 30)")
    parser.add_argument("--ca", type=Path, metavar="PEM", help="TLS: the CA that signed the server's certificate")
    parser.add_argument("--cert", type=Path, metavar="PEM", help="mutual TLS: this client's certificate")
    parser.add_argument("--key", type=Path, metavar="PEM", help="mutual TLS: this client's private key")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="send the bearer token in FILE (its first line) with every call")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def picture_args(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("--out", type=Path, default=Path(out), help=f"PNG to write (default: {out})")
        p.add_argument("--scale", type=positive_int, default=1, help="enlarge each pixel (default: 1)")

    def grid_input(p: argparse.ArgumentParser) -> None:
        p.add_argument("input", type=Path, help="PNG grid of 28x28 digits (sides multiples of 28)")

    p = sub.add_parser("sample", help="generate digits into a PNG grid")
    p.add_argument("--n", type=int, default=16, help="how many digits (default: 16)")
    p.add_argument("--model", default="gan", help="gan or vae (default: gan)")
    p.add_argument("--seed", type=int, help="same seed, same digits")
    p.add_argument("--digit", type=non_negative_int, help="draw this digit, 0-9, through the cGAN or cVAE")
    picture_args(p, "digits.png")

    p = sub.add_parser("interpolate", help="morph one sample into another, into a PNG strip")
    p.add_argument("--from-seed", type=non_negative_int, required=True, help="the first frame: this seed's sample")
    p.add_argument("--to-seed", type=non_negative_int, required=True, help="the last frame: this seed's sample")
    p.add_argument("--steps", type=int, default=8, help="frames, both ends included (default: 8)")
    p.add_argument("--model", default="vae", help="vae or gan (default: vae)")
    p.add_argument("--digit", type=non_negative_int, help="every frame shows this digit, 0-9")
    picture_args(p, "morph.png")

    p = sub.add_parser("grid", help="the VAE's latent manifold as a PNG")
    p.add_argument("--size", type=int, default=15, help="digits per side, 2-64 (default: 15)")
    p.add_argument("--span", type=float, default=3.0, help="z runs over [-span, span] (default: 3)")
    p.add_argument("--digit", type=non_negative_int, help="the cVAE's styles of this digit, 0-9")
    picture_args(p, "manifold.png")

    p = sub.add_parser("reconstruct", help="a PNG grid of digits through the VAE and back")
    grid_input(p)
    picture_args(p, "reconstructed.png")

    p = sub.add_parser("restyle", help="a PNG grid of digits, each written as another digit")
    grid_input(p)
    p.add_argument("--digit", type=non_negative_int, required=True, help="the digit to write, 0-9")
    picture_args(p, "restyled.png")

    p = sub.add_parser("classify", help="read the digits of a PNG grid: one line per digit")
    grid_input(p)

    p = sub.add_parser("denoise", help="denoise a PNG grid of 28x28 digits")
    grid_input(p)
    picture_args(p, "denoised.png")

    sub.add_parser("models", help="list the served models as JSON")

    p = sub.add_parser("dataset", help="labelled synthetic digits in shards (.npz and MNIST IDX) with a manifest",
                       description="Draw a labelled dataset through SampleStream into shards; a rerun keeps the "
                                   "shards whose sha256 checks and makes the rest.")
    p.add_argument("--out", type=Path, required=True, help="the dataset folder")
    p.add_argument("--n", type=positive_int, default=60000, help="images in all (default: 60000)")
    p.add_argument("--model", default="gan", help="gan or vae, through its conditional twin with --balanced or "
                                                  "--digit (default: gan)")
    p.add_argument("--balanced", action="store_true", help="image i shows digit i mod 10")
    p.add_argument("--digit", type=non_negative_int, help="every image shows this digit, 0-9")
    p.add_argument("--seed", type=non_negative_int, default=0, help="same seed, same bytes (default: 0)")
    p.add_argument("--truncation", type=float, help="the GAN's truncation (the VAE's prior scale), 0.05-10")
    p.add_argument("--min-confidence", type=float, help="redraw images the classifier reads otherwise or below this")
    p.add_argument("--shards", type=positive_int, default=1, help="files the images are split over (default: 1)")
    p.add_argument("--shard-index", type=non_negative_int, action="append",
                   default=[int(os.environ["JOB_COMPLETION_INDEX"])] if os.environ.get("JOB_COMPLETION_INDEX") else None,
                   help="make only this shard (repeatable; default: every shard, or a Kubernetes Indexed Job's "
                        "JOB_COMPLETION_INDEX)")
    p.add_argument("--format", default="npz,idx", help="npz, idx or npz,idx (default: npz,idx)")
    p.add_argument("--chunk", type=positive_int, default=1024, help="images per streamed message (default: 1024)")
    p.add_argument("--version", type=non_negative_int, default=0, help="pin a model version (default: the newest)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _first_line(path: Path) -> str:
    try:
        lines = token_lines(path.read_text())
    except OSError as exc:
        raise ValueError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not lines:
        raise ValueError(f"--token-file {path}: the file is empty")
    return lines[0]


def _dataset(client: GenerativeClient, args: argparse.Namespace) -> None:
    plan = dataset.plan_for(client, args.n, args.shards, args.seed, args.model, args.balanced, args.digit,
                            args.truncation, args.min_confidence, args.version,
                            [f.strip() for f in args.format.split(",") if f.strip()])
    shards = sorted(set(args.shard_index)) if args.shard_index is not None else list(range(plan.shards))
    bad = [shard for shard in shards if shard >= plan.shards]
    if bad:
        raise ValueError(f"--shard-index: {bad[0]} is not a shard of {plan.shards} (0-{plan.shards - 1})")
    kept, made, manifest = dataset.make(client, args.out, plan, shards, args.chunk, progress=not args.no_progress)
    print(f"{plan.model} v{plan.version}, seed {plan.seed}: {len(made)} shard(s) made, {len(kept)} kept "
          f"(their sha256 checked) in {args.out}")
    print(f"manifest: {manifest}" if manifest else "manifest: written once every shard is made")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        token = _first_line(args.token_file) if args.token_file else None
        with GenerativeClient(args.target, timeout=args.timeout, ca_cert=args.ca, client_cert=args.cert,
                              client_key=args.key, token=token) as client:
            if args.command == "sample":
                digits = client.sample_digits(args.n, args.model, args.seed, digit=args.digit)
                path = write_grid(digits, args.out, scale=args.scale)
                print(f"wrote {args.n} {args.model} digits to {path}")
            elif args.command == "interpolate":
                frames = client.interpolate(args.from_seed, args.to_seed, args.steps, model=args.model,
                                            digit=args.digit)
                path = write_grid(frames, args.out, ncol=len(frames), scale=args.scale)
                print(f"wrote {len(frames)} frames to {path}")
            elif args.command == "grid":
                grid = client.latent_grid(args.size, args.span, digit=args.digit)
                path = write_grid(grid.reshape(-1, *grid.shape[2:]), args.out, ncol=args.size, scale=args.scale)
                print(f"wrote a {args.size}x{args.size} manifold to {path}")
            elif args.command == "classify":
                tiles, _ = read_grid(args.input)
                read, probabilities = client.classify(tiles)
                print("image\tdigit\tprobability")
                for i, (d, p) in enumerate(zip(read, probabilities)):
                    print(f"{i}\t{d}\t{p[d]:.4f}")
            elif args.command in ("reconstruct", "restyle", "denoise"):
                tiles, ncol = read_grid(args.input)
                out = (client.restyle(tiles, args.digit) if args.command == "restyle"
                       else getattr(client, args.command)(tiles))
                path = write_grid(out, args.out, ncol=ncol, scale=args.scale)
                print(f"wrote {len(out)} {args.command.rstrip('e')}ed digits to {path}")
            elif args.command == "dataset":
                _dataset(client, args)
            else:
                print(json.dumps([m.__dict__ | {"inputs": [t.__dict__ for t in m.inputs],
                                                "outputs": [t.__dict__ for t in m.outputs]}
                                  for m in client.list_models()], indent=2))
    except (GenserveError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
