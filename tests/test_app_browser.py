"""The page in a real browser: Debian's Chromium driven by Playwright against the app server of
test_app_client.py (tiny, biased towards ⟨START⟩). Runs an example and sees its sketches as collapsible steps and
the neighbour gallery; sees the problem picture whole; clicks a point of the map and gets its neighbours; clicks
Compare and sees every mode's answer; sees a bad input reported in the page; saves screenshots under test-artifacts/.

Never `playwright install`: the browser is /usr/bin/chromium (`apt-get install chromium`; .ci/run does it)."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from test_app_client import app_server  # noqa: F401  (the shared server fixture)

from app.compare import COMPARE_MODES

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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]

POINT_TEXT = re.compile(r"/\d+ · \w+ · (problem|reasoning) picture")
WHOLE_PICTURE = """(img) => {
  // the picture as drawn (object-fit: contain letterboxes it inside the element), and any ancestor that clips it
  const r = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const scale = fit === "fill" ? null : Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  const width = scale ? img.naturalWidth * scale : r.width, height = scale ? img.naturalHeight * scale : r.height;
  const top = r.top + (r.height - height) / 2, bottom = top + height;
  let clipped_by = null;
  for (let node = img.parentElement; node && node.id !== "problem"; node = node.parentElement) {
    const style = getComputedStyle(node), box = node.getBoundingClientRect();
    if (style.overflow !== "visible" && (top < box.top - 1 || bottom > box.bottom + 1)) clipped_by = node.className;
  }
  return { fit, ratio: width / height, natural: img.naturalWidth / img.naturalHeight, height, clipped_by };
}"""
CLICK_FIRST_GALLERY_POINT = """(id) => {
  const plot = document.querySelector(`#${id} .js-plotly-plot`);
  const trace = plot._fullData.findIndex((t) => t.name !== "sketches");
  const data = plot._fullData[trace], layout = plot._fullLayout;
  const box = plot.getBoundingClientRect();
  return { x: box.left + layout.xaxis._offset + layout.xaxis.d2p(data.x[0]),
           y: box.top + layout.yaxis._offset + layout.yaxis.d2p(data.y[0]) };
}"""


@pytest.fixture(scope="module")
def page(app_server):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_server, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def test_example_shows_steps_neighbours_and_whole_picture(page):
    expect(page.locator("#banner")).to_contain_text("random weights")
    expect(page.locator("#gallery-status")).to_contain_text("ready", timeout=120_000)
    picture = page.locator("#problem img")
    expect(picture).to_have_count(1)
    page.wait_for_function(
        "() => { const i = document.querySelector('#problem img'); return i && i.naturalWidth > 0; }"
    )
    shown = picture.evaluate(WHOLE_PICTURE)
    assert shown["fit"] in ("contain", "scale-down", "fill") and shown["clipped_by"] is None, shown
    assert abs(shown["ratio"] - shown["natural"]) < 0.02 and shown["height"] > 200, shown  # the whole picture

    page.locator("#run").click()
    expect(page.locator("#answer h3")).to_contain_text("Answer", timeout=60_000)
    steps = page.locator("#reasoning details.sketch-step")
    expect(steps.first).to_be_visible()
    expect(steps.first.locator("summary")).to_contain_text("sketch 1 ·")
    expect(steps.first.locator("summary")).to_contain_text(" steps · ")
    expect(page.locator("#reasoning")).not_to_contain_text("sketching…")  # gone once the answer has finished
    expect(page.locator("#reasoning details[open]")).to_have_count(0)
    steps.first.locator("summary").click()  # opens like a chat UI's thought
    expect(page.locator("#reasoning details[open]")).to_have_count(1)
    expect(page.locator("#neighbours img")).to_have_count(5)
    expect(page.locator("#neighbours")).to_contain_text("cos ")
    expect(page.locator("#map .js-plotly-plot")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "app-reason.png"), full_page=True)


def test_clicking_the_map_shows_that_points_neighbours(page):
    page.locator("#map").scroll_into_view_if_needed()
    before = page.locator("#neighbours").inner_text()
    where = page.evaluate(CLICK_FIRST_GALLERY_POINT, "map")
    page.mouse.move(where["x"], where["y"])
    page.mouse.click(where["x"], where["y"])
    expect(page.locator("#sketch-note")).to_contain_text(POINT_TEXT, timeout=20_000)  # "key · family · role picture"
    expect(page.locator("#neighbours")).not_to_have_text(before)
    expect(page.locator("#neighbours img")).to_have_count(5)


def test_compare_shows_every_mode(page):
    page.locator("#compare-run").click()
    expect(page.locator("#answer")).to_contain_text("same prompt, settings and seed", timeout=120_000)
    table = page.locator("#compare table")
    for mode in COMPARE_MODES:
        expect(table.locator(f'th[data-mode="{mode}"]')).to_have_text(mode)
        answer = table.locator("tr").nth(1).locator(f'td[data-mode="{mode}"]')  # the answer row
        expect(answer).not_to_have_text("")
        expect(answer).not_to_contain_text("running")
    page.screenshot(path=str(ARTIFACTS / "app-compare.png"), full_page=True)


def test_bad_input_in_the_page_and_the_explorer(page):
    page.locator("#question textarea").fill("")  # bad input: reported in the page
    page.locator("#run").click()
    expect(page.get_by_text("the question is empty").first).to_be_visible(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "app-bad-input.png"))

    page.get_by_role("tab", name="Explorer").click()
    expect(page.locator("#explorer-summary")).to_contain_text("from this session", timeout=20_000)
    # the summary can arrive before plotly has drawn the map: wait for the plot the click needs
    expect(page.locator("#explorer-map .js-plotly-plot")).to_have_count(1, timeout=20_000)
    where = page.evaluate(CLICK_FIRST_GALLERY_POINT, "explorer-map")
    page.mouse.move(where["x"], where["y"])
    page.mouse.click(where["x"], where["y"])
    expect(page.locator("#explorer-info")).to_contain_text(POINT_TEXT, timeout=20_000)
    expect(page.locator("#explorer-neighbours img")).to_have_count(5)
    page.screenshot(path=str(ARTIFACTS / "app-explorer.png"), full_page=True)
