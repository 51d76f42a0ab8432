"""Server memory under a long run: RSS after the first 1,000 requests and then
every so often up to the total, for Sample n=1 (gan) at concurrency 64.

    python -m bench.memory --requests 100000
"""

from __future__ import annotations

import asyncio
import sys

from client import AsyncGenerativeClient

from .load import drive, load_parser
from .processes import start_server

FIRST = 1_000


async def run(target: str, total: int, concurrency: int, rss, points: int) -> list[tuple[int, int]]:
    marks = sorted({FIRST, *(round(total * k / points) for k in range(1, points + 1))})
    readings, done = [], 0
    async with AsyncGenerativeClient(target, retries=0, timeout=60) as client:
        for mark in marks:
            result = await drive(lambda i: client.sample_digits(n=1, seed=i), mark - done, concurrency)
            if result.errors:
                raise SystemExit(f"{result.errors} errors between {done:,} and {mark:,} requests")
            done = mark
            readings.append((done, rss()))
            print(f"| {done:,} | {readings[-1][1] / 2**20:.1f} | {readings[-1][1] / readings[0][1]:.3f} |",
                  flush=True)
    return readings


def main(argv: list[str] | None = None) -> int:
    parser = load_parser("python -m bench.memory", __doc__, requests=100_000)
    parser.add_argument("--points", type=int, default=10, help="RSS readings after the first 1,000")
    args = parser.parse_args(argv)
    if args.requests <= FIRST:
        parser.error(f"--requests must exceed {FIRST}")
    server = start_server(args.model_repository)
    try:
        print("| requests | server RSS MiB | x RSS at 1,000 |\n|---:|---:|---:|", flush=True)
        readings = asyncio.run(run(server.target, args.requests, args.concurrency, server.rss_bytes, args.points))
    finally:
        server.stop()
    growth = readings[-1][1] / readings[0][1] - 1
    print(f"\nRSS after {readings[-1][0]:,} requests is {growth:+.1%} against after {FIRST:,} "
          f"(target: within 10 %: {'met' if abs(growth) <= 0.10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
