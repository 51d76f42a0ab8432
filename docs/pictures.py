"""Draws the docs' pictures of the conditional models through a running server, and
the playground's screenshot in Debian's chromium:

    python -m server &            # the default models
    python docs/pictures.py       # writes docs/images/{cgan,cvae}_digits.png, ..., playground.png
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
    parser.add_argument("--http", default="http://localhost:8000", help="the server's HTTP address")
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
        volume_pictures(client)
    playground(args.http, IMAGES / "playground.png")
    print(f"wrote the pictures into {IMAGES}")


def volume_pictures(client: GenerativeClient) -> None:
    """The first 100 digits of ``python -m client dataset --balanced --min-confidence 0.9``
    (seed 0: image i shows digit i mod 10, a column per digit), and the GAN's truncation."""
    first = next(iter(client.stream_digits(100, balanced=True, seed=0, chunk=100, min_confidence=0.9)))
    write_grid(first.images, IMAGES / "dataset_shard.png", ncol=10, scale=SCALE)
    rows = [client.sample_digits(12, "gan", seed=5, truncation=t) for t in (None, 1.5, 1.0, 0.5)]
    write_grid(np.concatenate(rows), IMAGES / "truncation.png", ncol=12, scale=SCALE)


def playground(url: str, path: Path) -> None:
    """The page after a sample of 7s, a pointer on the latent plane, a drawn 4 and an interpolation."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.select_option("#digit", "7")
        page.click("#sample-button")
        page.wait_for_function("document.querySelector('#sample-image').naturalWidth > 0")
        box = page.locator("#plane").bounding_box()
        page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"])
        page.wait_for_timeout(500)
        pad = page.locator("#pad").bounding_box()
        strokes = [[(0.55, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.9)]]  # a 4
        for stroke in strokes:
            page.mouse.move(pad["x"] + stroke[0][0] * pad["width"], pad["y"] + stroke[0][1] * pad["height"])
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(pad["x"] + x * pad["width"], pad["y"] + y * pad["height"], steps=12)
            page.mouse.up()
        page.wait_for_function("document.querySelector('#digit-read').textContent !== '?'")
        page.click("#interp-button")
        page.wait_for_function("document.querySelector('#interp-image').naturalWidth > 0")
        page.wait_for_timeout(500)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
