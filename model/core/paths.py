"""Where the repository keeps what the command-line tools and the app start from, and what the names a user types
for a checkpoint mean before anything is loaded. No torch here: the app's page imports this before the model stack
(app/stack.py).

    from model.core.paths import DEFAULT_CHECKPOINT   # assets/checkpoints/demo, the shipped demo model
    target("demo")                # DEFAULT_CHECKPOINT: "demo" is the trained model in the app, its API and the CLI
    target("sweep/k32-l1", registered_folders())       # a registered name: its folder
    RANDOM_PRESETS["demo-random"]                       # "demo": the from-scratch preset, random weights

One meaning per name everywhere a user types one (`python -m app`, its page and API, `python -m model.generate`):
`demo` is the shipped trained model; the from-scratch presets with random weights go by `tiny` and `demo-random`.
Below the user's surfaces (training's `--init demo`, `model.core.checkpoint.load_model`) a preset keeps its own
name; `model.core.checkpoint.locate` is where the two meet.
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = str(ROOT / "assets" / "checkpoints" / "demo")  # what generate, the benchmarks and the app load
DEFAULT_REGISTRY = str(ROOT / "assets" / "checkpoints" / "registry.json")  # the registered checkpoints' names
SHIPPED = {"demo": DEFAULT_CHECKPOINT}  # names of shipped checkpoints, whatever the registry says
# the from-scratch presets (random weights) as a user names them → the preset's own name (model_config.py)
RANDOM_PRESETS = {"tiny": "tiny", "demo-random": "demo"}


def registered_folders(registry: str | Path = DEFAULT_REGISTRY) -> dict[str, str]:
    """{registered name: its path as the registry writes it (relative ones are under the repository)}; {} without a
    readable registry (analysis/sweeps.py checks a registry in full; this only reads the names)."""
    try:
        entries = json.loads(Path(registry).read_text(encoding="utf-8")).get("checkpoints", [])
    except (OSError, ValueError, AttributeError):
        return {}
    out = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("path"), str):
            out[entry["name"]] = entry["path"]
    return out


def target(name: str, registered: dict[str, str] | None = None) -> str:
    """What a typed checkpoint name points at: a shipped checkpoint's folder (`demo`), a registered name's folder,
    else the name itself (a folder, a preset or a hub id, for model.core.checkpoint.resolve to read)."""
    name = name.strip()
    return SHIPPED.get(name) or (registered or {}).get(name) or name
