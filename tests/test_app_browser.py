"""The page in a real browser: Debian's Chromium driven by Playwright against the app server of
test_app_client.py (tiny, biased towards ⟨START⟩). Runs an example, sees the highlighted sketches and the neighbour
gallery, sees a bad input reported in the page, and saves screenshots under test-artifacts/.

Never `playwright install`: the browser is /usr/bin/chromium (`apt-get install chromium`; .ci/run does it)."""

from pathlib import Path

import pytest
from test_app_client import app_server  # noqa: F401  (the shared server fixture)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install -y chromium)"
)


def test_example_shows_sketches_and_neighbours(app_server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_server, wait_until="domcontentloaded")
            expect(page.locator("#banner")).to_contain_text("random weights")
            page.locator("#run").click()
            expect(page.locator("#answer h3")).to_contain_text("Answer", timeout=60_000)

            reasoning = page.locator("#reasoning")
            expect(reasoning).to_contain_text("⟨START⟩ sketch 1")
            expect(reasoning).to_contain_text("⟨END⟩")
            sketch = reasoning.locator(".token.highlighted", has_text="⟨START⟩ sketch 1")  # a coloured span
            expect(sketch).to_have_count(1)
            expect(sketch).to_have_css("background-color", "rgba(251, 146, 60, 0.5)")  # render.COLOR_MAP["sketch"]
            expect(page.locator("#neighbours img")).to_have_count(5)
            expect(page.locator("#neighbours")).to_contain_text("cos ")
            expect(page.locator("#map .js-plotly-plot")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "app-reason.png"), full_page=True)

            page.locator("#question textarea").fill("")  # bad input: reported in the page
            page.locator("#run").click()
            expect(page.get_by_text("the question is empty").first).to_be_visible(timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "app-bad-input.png"))

            page.get_by_role("tab", name="Explorer").click()
            expect(page.locator("#explorer-summary")).to_contain_text("from this session", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "app-explorer.png"), full_page=True)
        finally:
            browser.close()
