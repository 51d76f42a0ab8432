"""The playground page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): it loads without console errors, sampling draws digits, moving over the
latent plane changes the decoded digit, and a drawn stroke is classified."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package; .ci/run installs it)")]


def canvas_ink(page, selector: str) -> int:
    """How many pixels of a canvas are not black."""
    return page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 0) lit++;
        return lit;
    }""", selector)


def canvas_bytes(page, selector: str) -> str:
    return page.evaluate("(s) => document.querySelector(s).toDataURL()", selector)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://127.0.0.1:{server.http_port}/")
        page.errors = errors
        yield page
        browser.close()


def test_the_page_loads_without_errors(page):
    page.wait_for_function("document.querySelector('#z-label').textContent !== 'z = (0, 0)' "
                           "|| document.querySelector('#decoded').getContext('2d')"
                           ".getImageData(0, 0, 140, 140).data.some((v, i) => i % 4 < 3 && v > 0)")
    assert page.errors == []


def test_sampling_draws_digits(page):
    page.select_option("#digit", "7")
    page.click("#sample-button")
    page.wait_for_function("document.querySelector('#sample-image').naturalWidth > 0")
    lit = page.evaluate("""() => {
        const img = document.querySelector('#sample-image');
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 0) lit++;
        return [lit, img.naturalWidth, img.naturalHeight];
    }""")
    assert lit[0] > 100 and lit[1:] == [4 * 28 * 2, 4 * 28 * 2]
    assert page.errors == []


def test_moving_over_the_latent_plane_changes_the_decoded_digit(page):
    box = page.locator("#plane").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.wait_for_function("document.querySelector('#z-label').textContent.startsWith('z = (-2.')")
    before = canvas_bytes(page, "#decoded")
    page.mouse.move(box["x"] + box["width"] - 20, box["y"] + box["height"] - 20)
    page.wait_for_function("document.querySelector('#z-label').textContent.startsWith('z = (2.')")
    assert canvas_bytes(page, "#decoded") != before and canvas_ink(page, "#decoded") > 0
    assert page.errors == []


def test_a_drawn_stroke_is_denoised_classified_and_placed(page):
    box = page.locator("#pad").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 40
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 21):  # a vertical bar: a 1
        page.mouse.move(x, y + step * 10)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#digit-read').textContent !== '?'")
    assert page.text_content("#digit-read")[0].isdigit()
    assert canvas_ink(page, "#denoised") > 0
    assert page.locator("#probabilities div").count() == 10
    page.fill("#from-seed", "3")
    page.click("#interp-button")
    page.wait_for_function("document.querySelector('#interp-image').naturalWidth > 0")
    assert page.errors == []
