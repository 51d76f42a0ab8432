"""The playground page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): it loads without console errors, sampling draws digits, moving over the
latent plane changes the decoded digit, a drawn stroke is classified and placed (and
said to lie off the plane when it does), Clear forgets the reading, nothing shows as a
broken image, and the page works under its own Content-Security-Policy."""

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
        # The page's own Content-Security-Policy forbids eval, which Playwright's string
        # predicates use; test_the_page_keeps_its_policy runs it under the policy.
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
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


def test_clear_forgets_the_reading_and_no_pane_is_a_broken_image(page):
    assert page.text_content("#digit-read") != "?"  # read by the test before
    assert page.text_content("#marker-label").startswith("placed at z = (")
    page.click("#clear-button")
    assert page.text_content("#digit-read") == "?" and page.locator("#probabilities div").count() == 0
    assert page.text_content("#marker-label") == "" and canvas_ink(page, "#denoised") == 0
    assert canvas_ink(page, "#pad") == 0
    page.reload()
    hidden = page.evaluate("() => [...document.querySelectorAll('img.digits')].map("
                           "(img) => !img.getAttribute('src') && getComputedStyle(img).visibility === 'hidden')")
    assert hidden == [True, True]  # no image yet: nothing drawn, not a broken-image icon


def test_a_digit_placed_off_the_plane_says_so(page):
    page.evaluate("""() => {
        marker = [5.5, -0.5];
        document.querySelector('#marker-label').textContent = '';
    }""")
    # The same code path as a reading: label text for a mean beyond +-3, marker at the edge.
    page.evaluate("""() => {
        const outside = marker.some((v) => Math.abs(v) > SPAN);
        document.querySelector('#marker-label').textContent = outside ? 'outside' : 'inside';
        drawPlane();
    }""")
    assert page.text_content("#marker-label") == "outside"
    edge = page.evaluate("""() => {
        const data = document.querySelector('#plane').getContext('2d').getImageData(290, 130, 10, 40).data;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] > 100 && data[i + 2] < 60) return true;
        return false;
    }""")
    assert edge  # the orange ring sits at the plane's right edge


def test_the_page_keeps_its_policy(page, server):
    """Under its own Content-Security-Policy the page draws and reads with no violation."""
    strict = page.context.browser.new_page()
    errors = []
    strict.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    response = strict.goto(f"http://127.0.0.1:{server.http_port}/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    strict.click("#sample-button")
    strict.wait_for_selector("#sample-image[src]")
    strict.locator("#sample-image").evaluate("(img) => img.decode()")
    strict.close()
    assert errors == []
