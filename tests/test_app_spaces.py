"""The app as Hugging Face Spaces starts it: `python <app_file>` from the README's front matter, no flags, host and
port from the environment variables Spaces sets (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT), the working folder the
repository's, so the shipped checkpoint (assets/checkpoints/demo) is what it serves. The repository is seen through
a folder of links, so that the gallery cache and the event store it writes (relative to the working folder) land
in a temporary folder, not in the repository's cache/. Slow: `python -m pytest -m slow tests/test_app_spaces.py`."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from gradio_client import Client
from test_app_client import _free_port, _stop, wait_for_page

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = {".git", ".venv", "cache", "runs", "data", "test-artifacts"}  # not the app's: left out of the link folder

pytestmark = pytest.mark.slow


def front_matter(readme: Path) -> dict[str, str]:
    """The README's YAML front matter (key: value lines between the opening --- lines)."""
    block = re.match(r"---\n(.*?)\n---\n", readme.read_text(encoding="utf-8"), re.S)
    assert block, "the README starts with the Spaces front matter"
    return dict(line.split(": ", 1) for line in block.group(1).splitlines() if ": " in line)


def test_the_space_starts_and_answers_an_example(tmp_path):
    app_file = front_matter(ROOT / "README.md")["app_file"]
    assert (ROOT / app_file).is_file() and front_matter(ROOT / "README.md")["sdk"] == "gradio"
    space = Path(tempfile.mkdtemp(prefix="space-", dir=tmp_path))
    for entry in ROOT.iterdir():
        if entry.name not in SKIPPED:
            (space / entry.name).symlink_to(entry)
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1")
    log = tmp_path / "space.log"
    process = subprocess.Popen([sys.executable, app_file], cwd=space, env=env, stdout=open(log, "w"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, process, log, timeout_s=300)
        client = Client(url, verbose=False)
        assert client.predict(api_name="/checkpoints")["default"] == "assets/checkpoints/demo"
        trace = client.predict(example_id="maze-1", max_new_tokens=64, api_name="/reason")
        assert trace["num_positions"] > 0 and trace["correct"] in (True, False), trace
        assert (space / "cache" / "events").is_dir(), "the answer's switch events go under the working folder"
    finally:
        _stop(process)
