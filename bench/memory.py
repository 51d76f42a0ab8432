"""Server memory under a long run: RSS after the first 1,000 requests and then
every so often up to the total, for Sample n=1 (gan) at concurrency 64; then RSS
after a burst of the largest legal requests of every model, and once it has passed.

    python -m bench.memory --requests 100000
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np

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


async def burst(target: str, count: int, rows: int) -> None:
    """``count`` requests of ``rows`` images each, taking turns over the models, 8 at once."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (rows, 28, 28), dtype=np.uint8)
    z = rng.standard_normal((rows, 2)).astype(np.float32)
    async with AsyncGenerativeClient(target, retries=0, timeout=300) as client:
        calls = [lambda: client.sample_digits(n=rows, model="gan", as_float=True),
                 lambda: client.sample_digits(n=rows, model="vae", as_float=True),
                 lambda: client.denoise(images, as_float=True), lambda: client.encode(images),
                 lambda: client.decode(z, as_float=True)]
        result = await drive(lambda i: calls[i % len(calls)](), count, 8)
    if result.errors:
        raise SystemExit(f"{result.errors} errors in the burst")


def main(argv: list[str] | None = None) -> int:
    parser = load_parser("python -m bench.memory", __doc__, requests=100_000)
    parser.add_argument("--points", type=int, default=10, help="RSS readings after the first 1,000")
    parser.add_argument("--burst", type=int, default=100, help="largest requests after the run (default: 100)")
    parser.add_argument("--rows", type=int, default=1024, help="images per burst request (default: 1024, "
                        "the server's default --max-request-size)")
    args = parser.parse_args(argv)
    if args.requests <= FIRST:
        parser.error(f"--requests must exceed {FIRST}")
    server = start_server(args.model_repository)
    try:
        print("| requests | server RSS MiB | x RSS at 1,000 |\n|---:|---:|---:|", flush=True)
        readings = asyncio.run(run(server.target, args.requests, args.concurrency, server.rss_bytes, args.points))
        if args.burst:
            asyncio.run(burst(server.target, args.burst, args.rows))
            during = server.rss_bytes()
            time.sleep(2)
            after = server.rss_bytes()
    finally:
        server.stop()
    growth = readings[-1][1] / readings[0][1] - 1
    print(f"\nRSS after {readings[-1][0]:,} requests is {growth:+.1%} against after {FIRST:,} "
          f"(target: grows by at most 10 %: {'met' if growth <= 0.10 else 'NOT met'})")
    if args.burst:
        print(f"after {args.burst} requests of {args.rows} images (every model, 8 at once): "
              f"{during / 2**20:.1f} MiB; 2 s later: {after / 2**20:.1f} MiB "
              f"({(after - readings[-1][1]) / 2**20:+.1f} MiB against before the burst)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
