"""Where the repository keeps what the command-line tools and the app start from. No torch here: the app's page
imports this before the model stack (app/stack.py).

    from model.core.paths import DEFAULT_CHECKPOINT   # assets/checkpoints/demo, the shipped demo model
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = str(ROOT / "assets" / "checkpoints" / "demo")  # what generate, the benchmarks and the app load
