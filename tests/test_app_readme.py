"""The README's own API example against the shipped demo model, in this process (app/api.py, no server): the puzzle
it asks about is one the model answers right, the answers it prints are the ones it gets, and /switching_stats
returns the shape the README's table gives."""

import re
from pathlib import Path

import pytest

from app import api
from app.request import ApiInputs
from app.service import Service, ServiceConfig
from model.core.paths import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SNIPPET = re.search(r"## App\n.*?```python\n(.*?)```", README, re.DOTALL).group(1)

pytestmark = pytest.mark.skipif(not Path(DEFAULT_CHECKPOINT).is_dir(), reason="no shipped demo checkpoint")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    return Service(
        ServiceConfig(cache_dir=str(root / "cache"), event_store=str(root / "events"), gallery_per_family=1)
    )


def test_the_readme_asks_about_a_puzzle_the_model_answers_right(service):
    asked = re.search(r'trace = client\.predict\(example_id="([\w-]+)"', SNIPPET).group(1)
    printed = re.search(r"^# (\w+) (True|False) (\d+) ", SNIPPET, re.MULTILINE)
    trace = api.reason(service, ApiInputs(example_id=asked))
    assert trace["correct"] is True, "the README's example must be one the shipped model gets right"
    assert (trace["answer"], str(trace["correct"]), str(trace["num_sketches"])) == printed.groups()
    question = re.search(r'question = "(.*?)"', SNIPPET).group(1)
    assert question == service.examples[asked].question, "the upload asks the example's own question"
    image = str(ROOT / re.search(r'handle_file\("(.*?)"\)', SNIPPET).group(1))
    own = api.reason(service, ApiInputs(image=image, question=question))
    answer, correct = re.search(r"^# (\w+) (None)\s", SNIPPET.split("own = ")[1], re.MULTILINE).groups()
    assert own["answer"] == answer and own["correct"] is None


def test_switching_stats_has_the_documented_shape(service):
    api.reason(service, ApiInputs(example_id="maze-1", max_new_tokens=16))
    stats = api.switching_stats(service, family="maze")
    assert set(stats) == {"num_answers", "message", "summary"} and stats["num_answers"] >= 1
    assert {"family", "mode", "num_answers", "start_rate", "accuracy"} <= set(stats["summary"][0])
    assert '`{"num_answers": int, "message": str, "summary": [record, …]}`' in README
    assert service.load().wait_ready(300)  # its gallery thread done before the interpreter exits
