"""Draws the pictures of docs/training.md's conditional models through a running server:

    python -m server &            # the default models
    python docs/pictures.py       # writes docs/images/{cgan,cvae}_digits.png, interpolation.png, ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from client import GenerativeClient
from client.pictures import write_grid
from trainer.data import load_split

IMAGES = Path(__file__).resolve().parent / "images"
SCALE = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    args = parser.parse_args()
    rows = np.repeat(np.arange(10), 10)  # a row per digit, ten styles across
    with GenerativeClient(args.target, timeout=60) as client:
        for model in ("gan", "vae"):
            write_grid(client.sample_digits(100, model, seed=1, digit=rows), IMAGES / f"c{model}_digits.png",
                       ncol=10, scale=SCALE)
        strips = [client.interpolate(1, 2, steps=12, model="vae"), client.interpolate(1, 2, steps=12, model="gan"),
                  client.interpolate(3, 4, steps=12, model="vae", digit=4),
                  client.interpolate(3, 4, steps=12, model="gan", digit=4)]
        write_grid(np.concatenate(strips), IMAGES / "interpolation.png", ncol=12, scale=SCALE)
        grid = client.latent_grid(15, digit=3)
        write_grid(grid.reshape(-1, 28, 28), IMAGES / "cvae_manifold_3.png", ncol=15, scale=SCALE)
        test = load_split(Path(__file__).resolve().parents[1] / "data" / "mnist", "test")
        handwriting = test.images[:10]  # the first test digits, one column each
        restyled = [client.restyle(handwriting, d, source_digits=test.labels[:10]) for d in range(10)]
        write_grid(np.concatenate([handwriting, *restyled]), IMAGES / "restyle.png", ncol=10, scale=SCALE)
    print(f"wrote the pictures into {IMAGES}")


if __name__ == "__main__":
    main()
