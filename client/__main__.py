"""``python -m client sample|denoise|models``: the SDK from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genserve.cli import OneLineParser
from genserve.tokens import token_lines

from . import GenerativeClient, GenserveError
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


def _first_line(path: Path) -> str:
    try:
        lines = token_lines(path.read_text())
    except OSError as exc:
        raise ValueError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not lines:
        raise ValueError(f"--token-file {path}: the file is empty")
    return lines[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        token = _first_line(args.token_file) if args.token_file else None
        with GenerativeClient(args.target, timeout=args.timeout, ca_cert=args.ca, client_cert=args.cert,
                              client_key=args.key, token=token) as client:
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
