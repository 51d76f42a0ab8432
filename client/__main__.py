"""``python -m client sample|denoise|models``: the SDK from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import GenerativeClient, GenserveError
from .pictures import read_grid, write_grid


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m client", description="Call a genserve server.")
    parser.add_argument("--target", default="localhost:50051", help="server host:port (default: localhost:50051)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: 30)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("sample", help="generate digits into a PNG grid")
    p.add_argument("--n", type=int, default=16, help="how many digits (default: 16)")
    p.add_argument("--model", default="gan", help="gan or vae (default: gan)")
    p.add_argument("--seed", type=int, help="same seed, same digits")
    p.add_argument("--out", type=Path, default=Path("digits.png"), help="PNG to write (default: digits.png)")
    p.add_argument("--scale", type=int, default=1, help="enlarge each pixel (default: 1)")

    p = sub.add_parser("denoise", help="denoise a PNG grid of 28x28 digits")
    p.add_argument("input", type=Path, help="PNG whose sides are multiples of 28")
    p.add_argument("--out", type=Path, default=Path("denoised.png"), help="PNG to write (default: denoised.png)")
    p.add_argument("--scale", type=int, default=1, help="enlarge each pixel (default: 1)")

    sub.add_parser("models", help="list the served models as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with GenerativeClient(args.target, timeout=args.timeout) as client:
            if args.command == "sample":
                path = write_grid(client.sample_digits(args.n, args.model, args.seed), args.out, scale=args.scale)
                print(f"wrote {args.n} {args.model} digits to {path}")
            elif args.command == "denoise":
                tiles, ncol = read_grid(args.input)
                path = write_grid(client.denoise(tiles), args.out, ncol=ncol, scale=args.scale)
                print(f"wrote {len(tiles)} denoised digits to {path}")
            else:
                print(json.dumps([m.__dict__ | {"inputs": [t.__dict__ for t in m.inputs],
                                                "outputs": [t.__dict__ for t in m.outputs]}
                                  for m in client.list_models()], indent=2))
    except (GenserveError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
