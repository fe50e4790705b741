"""The page in a real browser: Debian's Chromium driven by Playwright against the app server of
test_app_client.py (tiny, biased towards ⟨START⟩). Runs an example and sees its sketches as collapsible steps with
the true sketch beside, the neighbour strip (whole pictures, captions not cut) and the map (legend and stars not
clipped); sees the problem picture whole; clicks a point of the map and gets its neighbours; clicks Compare and sees
every mode's answer under the answer, which stays; sees a bad input named at its input while the page stays as it
was; opens every tab. No text depends on an emoji font (Debian's Chromium has none). Screenshots of each tab go to
test-artifacts/.

Never `playwright install`: the browser is /usr/bin/chromium (`apt-get install chromium`; .ci/run does it)."""

import os
import re
from pathlib import Path

import pytest
from gradio_client import Client
from playwright.sync_api import expect, sync_playwright
from test_app_client import NOT_TRAINED, app_server, server_log  # noqa: F401  (the shared server and its log)

from model.core.checkpoint import build_preset, save_pretrained
from model.data.vocabulary import question_words, save_vocabulary
from model.generation.modes import mode_names

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

BUDGET = [f"sweep/k{k}-l1" for k in (4, 8, 16, 32, 64)]
SWEEP_PANELS = {  # the server's registry holds tests/sweep_grids.py NEW_GRID, the demo and the baselines
    "accuracy_vs_k": BUDGET,
    "use_vs_k": BUDGET,
    "accuracy_vs_lambda": ["sweep/k64-l0.1", "sweep/k64-l1", "sweep/k64-l10"],
    "latency_vs_k": BUDGET,
    "head": ["sweep/k64-l1", "sweep/k64-l1-regression"],
    "decoding": ["sweep/k64-l1", "sweep/k64-l1-sequential"],
}
TRAINED = (
    ". Each trained: supervised steps not recorded, stage refine from warmup, no GRPO, data version not recorded."
)
SWEEP_TRACES = """(key) => document.querySelector(`#sweeps-${key} .js-plotly-plot`).data.map((t) => ({
  name: t.name, x: t.x, bars: (t.error_y.array || []).filter((v) => v > 0).length, trained: t.customdata[0][3] }))"""
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
EMOJI = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff]")
NOT_CLIPPED = """(id) => {
  // the map's legend and the stars' labels lie inside the plot's drawing, and no neighbour picture or caption is cut
  const inside = (a, b) =>
    a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  const svg = document.querySelector(`#${id} .main-svg`).getBoundingClientRect();
  const legend = document.querySelector(`#${id} .legend`).getBoundingClientRect();
  const labels = [...document.querySelectorAll(`#${id} .scatterlayer .trace text`)]
    .map((t) => t.getBoundingClientRect());
  const pictures = [...document.querySelectorAll("#neighbours figure img")].map((img) => {
    const r = img.getBoundingClientRect();
    return Math.abs(r.width / r.height - img.naturalWidth / img.naturalHeight) < 0.02;
  });
  const captions = [...document.querySelectorAll("#neighbours figcaption")].map(
    (c) => c.scrollWidth <= c.clientWidth + 1 && c.getBoundingClientRect().height > 0);
  const all = (list) => list.length > 0 && list.every(Boolean);
  return { legend: inside(legend, svg), labels: all(labels.map((l) => inside(l, svg))), pictures: all(pictures),
           captions: all(captions) };
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
    expect(page.locator("#gallery-status")).to_contain_text("ready", timeout=120_000)
    expect(page.locator("#banner")).to_contain_text("random weights")
    expect(page.locator("#checkpoint-info")).to_contain_text("K = 4 latents per sketch")
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
    truth = page.locator('#reasoning details[open] img[alt^="true sketch 1"]')  # beside the step, large
    expect(truth).to_have_count(1)
    assert truth.bounding_box()["width"] >= 250
    expect(page.locator("#neighbours img")).to_have_count(5)
    expect(page.locator("#neighbours")).to_contain_text("cos ")
    expect(page.locator("#map .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#answer")).to_contain_text("expected purple")
    assert not EMOJI.search(page.locator("body").inner_text()), "text that needs an emoji font"
    assert page.evaluate(NOT_CLIPPED, "map") == {"legend": True, "labels": True, "pictures": True, "captions": True}
    expect(page.locator("#sketch-note")).not_to_contain_text("appear once the gallery is ready")
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


def test_compare_shows_every_mode_and_keeps_the_answer(page):
    answer = page.locator("#answer").inner_text()
    page.locator("#compare-run").click()
    expect(page.locator("#compare")).to_contain_text("same prompt, settings and seed", timeout=120_000)
    assert page.locator("#answer").inner_text() == answer, "the answer line, right/wrong and timings stay"
    table = page.locator("#compare table")
    for mode in mode_names(compare=True):
        expect(table.locator(f'th[data-mode="{mode}"]')).to_have_text(mode)
        answer = table.locator("tr").nth(1).locator(f'td[data-mode="{mode}"]')  # the answer row
        expect(answer).not_to_have_text("")
        expect(answer).not_to_contain_text("running")
    # the registered text-only-CoT model's column: the same puzzle reasoned in words, with its positions written
    expect(table.locator('th[data-mode="text-cot"]')).to_contain_text("the same puzzle reasoned in words")
    words = table.locator('td[data-mode="text-cot"]')
    expect(words.nth(0)).not_to_contain_text("running")
    expect(words.nth(0)).not_to_contain_text("registered")  # it ran: not skipped
    expect(words.nth(4)).to_have_text(re.compile(r"^\d+$"))  # positions (tokens)
    page.locator("#compare").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "app-compare.png"), full_page=True)


def test_bad_input_in_the_page_and_the_explorer(page):
    page.locator("#reasoning").scroll_into_view_if_needed()
    before = {name: page.locator(f"#{name}").inner_text() for name in ("reasoning", "answer", "compare")}
    page.locator("#question textarea").fill("")  # bad input: named at its input, the rest of the page kept
    page.locator("#run").click()
    expect(page.locator("#question")).to_contain_text("the question is empty", timeout=20_000)
    page.wait_for_timeout(1000)
    assert {name: page.locator(f"#{name}").inner_text() for name in before} == before
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # no badge on the output panels
    expect(page.locator("#example input")).to_have_value(re.compile("^maze-1 · "))  # the chosen example stays
    page.locator("#question").scroll_into_view_if_needed()
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


def test_statistics_and_sweeps_tabs(page):
    page.get_by_role("tab", name="Switching statistics").click()
    expect(page.locator("#stats-message")).to_contain_text("answer(s) from", timeout=20_000)
    expect(page.locator("#stats-modes")).to_contain_text("auto")
    expect(page.locator("#stats-table")).to_contain_text("mode")
    page.screenshot(path=str(ARTIFACTS / "app-statistics.png"), full_page=True)
    page.get_by_role("tab", name="Sweeps").click()
    expect(page.locator("#sweeps-message")).to_contain_text("9 sweep point(s)", timeout=20_000)
    expect(page.locator("#sweeps-message")).not_to_contain_text("/tmp")  # no server path in the page
    expect(page.locator("#sweeps-message")).to_contain_text(f"1 planned sweep point(s) not trained yet: {NOT_TRAINED}")
    for key, points in SWEEP_PANELS.items():  # every panel drawn, its caption naming its points and their training
        expect(page.locator(f"#sweeps-{key} .js-plotly-plot")).to_have_count(1, timeout=20_000)
        caption = page.locator(f"#sweeps-{key}-caption")
        expect(caption).to_have_text(f"Draws {len(points)} point(s): " + ", ".join(points) + TRAINED)
    drawn = page.evaluate(SWEEP_TRACES, "accuracy_vs_k")  # each family's own intervals, apart from the others'
    assert sorted(t["name"] for t in drawn) == ["fold", "maze", "overall"]
    assert all(t["bars"] == 5 and t["trained"].startswith("supervised steps not recorded") for t in drawn), drawn
    assert len({tuple(t["x"]) for t in drawn}) == 3, "no two families drawn at the same places"
    expect(page.locator("#sweeps-head .gtitle")).to_contain_text("K = 64")
    page.wait_for_timeout(1000)  # plotly's transitions
    page.screenshot(path=str(ARTIFACTS / "app-sweeps.png"), full_page=True)


# ---- issue 42: a new user's rough edges -------------------------------------------------------------------------
def _type_checkpoint(page, name: str) -> None:
    box = page.locator("#checkpoint input")
    box.click()
    box.fill(name)
    box.press("Enter")


# a file that exists, reached upwards from the server's folder (the repository root), however deep the clone lies
PASSWD = os.path.relpath("/etc/passwd", Path(__file__).resolve().parent.parent)


def test_a_checkpoint_the_box_cannot_load_is_one_line_under_it(page):
    page.get_by_role("tab", name="Reason").click()
    page.mouse.wheel(0, -5000)
    before = {name: page.locator(f"#{name}").inner_text() for name in ("checkpoint-info", "gallery-status")}
    for typed, message in [(PASSWD, f"checkpoint {PASSWD} is a file, not a folder"),
                           ("nobody/no-such-model", "the Hugging Face hub did not answer within 1.5 s")]:  # fmt: skip
        _type_checkpoint(page, typed)
        shown = page.locator("#checkpoint-message")
        expect(shown).to_contain_text(message, timeout=20_000)
        expect(shown).to_contain_text("Not loaded:")
        expect(shown).to_contain_text("Still using tiny")
        expect(page.locator("#checkpoint input")).to_have_value("tiny")  # the box: the checkpoint in use again
        expect(page.locator(".toast-body")).to_have_count(0)  # one message, under the box: no toast besides
        expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # no badge on the lines below
        assert {name: page.locator(f"#{name}").inner_text() for name in before} == before
    page.screenshot(path=str(ARTIFACTS / "app-checkpoint-refused.png"))
    page.locator("#question textarea").fill("Which colour lies on the way: blue, yellow or purple?")  # emptied above
    page.locator("#run").click()  # nothing covers the page: the answer runs on the checkpoint in use
    expect(page.locator("#checkpoint-message")).to_be_hidden(timeout=60_000)  # the answer's first update
    expect(page.locator("#answer h3")).to_contain_text("Answer", timeout=60_000)


def test_settings_out_of_range_are_named_at_their_box(page):
    answer = page.locator("#answer").inner_text()
    page.locator("#temperature input").fill("5")  # a slider would have clamped these to 2 and 0 without a word
    page.locator("#max-sketches input").fill("-1")
    page.locator("#run").click()
    expect(page.locator("#temperature")).to_contain_text("temperature must be from 0 to 2, got 5", timeout=20_000)
    expect(page.locator("#max-sketches")).to_contain_text("max_sketches must be a whole number from 0 to 64, got -1")
    page.wait_for_timeout(1000)
    assert page.locator("#answer").inner_text() == answer, "nothing ran"
    page.locator("#temperature").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "app-settings-refused.png"))
    page.locator("#temperature input").fill("0")
    page.locator("#max-sketches input").fill("4")


def test_a_refused_upload_keeps_the_chosen_example(page, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("this is not a picture")
    page.locator("#uploads").scroll_into_view_if_needed()
    page.locator("#uploads input[type=file]").set_input_files(str(notes))
    expect(page.locator(".toast-body")).to_contain_text("notes.png is not an image file", timeout=20_000)
    expect(page.locator("#example input")).to_have_value(re.compile("^maze-1 · "))
    expect(page.locator("#problem img")).to_have_count(1)
    expect(page.locator("#true-sketches img")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "app-upload-refused.png"))


def test_use_in_the_reason_tab_moves_the_status_lines(page):
    page.get_by_role("tab", name="Sweeps").click()
    page.locator("#sweeps-chosen input").click()
    page.get_by_role("option", name="baseline/text-cot").click()
    page.locator("#sweeps-use").click()
    page.get_by_role("tab", name="Reason").click()
    status, info = page.locator("#gallery-status"), page.locator("#checkpoint-info")
    expect(page.locator("#max-new-tokens input")).to_have_value("448")  # room for its 16×16 traces in words
    expect(status).to_contain_text("text-cot", timeout=20_000)
    expect(info).to_contain_text("text-cot")
    expect(status).to_contain_text("Ready", timeout=180_000)  # it follows the gallery as it builds, then stops
    expect(info).to_contain_text("gallery of")
    page.mouse.wheel(0, -5000)
    page.screenshot(path=str(ARTIFACTS / "app-use-in-reason.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 600})
    _type_checkpoint(page, "tiny")  # back to the default for the tests after this one
    expect(status).to_contain_text("Ready: tiny", timeout=20_000)


def test_a_paraphrased_example_and_the_words_the_checkpoint_never_saw(page, tmp_path):
    """An example asked in a paraphrase, on a checkpoint whose training vocabulary lacks some of its words: the line
    under the question names them; back on the preset (no vocabulary) the line is gone."""
    template = "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?"
    folder = save_pretrained(build_preset("tiny", seed=5), tmp_path / "knows")
    save_vocabulary(question_words(template), str(folder))
    page.get_by_role("tab", name="Reason").click()
    page.mouse.wheel(0, -5000)
    page.locator("#example input").click()
    page.get_by_role("option", name=re.compile("^maze-1-paraphrased · held-out word · ")).click()
    expect(page.locator("#question textarea")).to_have_value(re.compile("hallways"))
    _type_checkpoint(page, str(folder))
    expect(page.locator("#gallery-status")).to_contain_text("knows", timeout=20_000)
    page.locator("#max-new-tokens input").fill("8")
    page.locator("#run").click()
    line = page.locator("#unseen-words")
    expect(line).to_contain_text("Words this checkpoint never saw in training:", timeout=60_000)
    expect(line).to_contain_text("hallways")
    expect(page.locator("#answer h3")).to_contain_text("Answer", timeout=60_000)
    page.locator("#question").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "app-unseen-words.png"))
    _type_checkpoint(page, "tiny")  # back to the default and its example for the tests after this one
    expect(page.locator("#gallery-status")).to_contain_text("Ready: tiny", timeout=20_000)
    page.locator("#run").click()
    expect(line).to_be_hidden(timeout=60_000)  # the preset is not checked, and says nothing
    page.locator("#example input").click()
    page.get_by_role("option", name=re.compile("^maze-1 · ")).click()


def test_a_new_page_shows_the_default_after_others_were_loaded(app_server, page, tmp_path):  # noqa: F811
    client = Client(app_server, verbose=False)
    for seed in (1, 2, 3):  # more checkpoints than the server keeps loaded (--max-models 3)
        folder = save_pretrained(build_preset("tiny", seed=seed), tmp_path / f"tiny-{seed}")
        client.predict(example_id="maze-1", checkpoint=str(folder), max_new_tokens=4, api_name="/reason")
    assert "tiny" in client.predict(api_name="/checkpoints")["loaded"]
    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.goto(app_server, wait_until="domcontentloaded")
    expect(fresh.locator("#gallery-status")).to_contain_text("Ready: tiny", timeout=30_000)
    expect(fresh.locator("#checkpoint-info")).to_contain_text("K = 4 latents per sketch")
    fresh.screenshot(path=str(ARTIFACTS / "app-new-page.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 600})
    fresh.close()


def test_no_user_error_wrote_a_traceback(server_log):  # noqa: F811
    log = server_log.read_text()
    assert "Traceback" not in log and f"refused checkpoint: checkpoint {PASSWD} is a file" in log
