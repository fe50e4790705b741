"""What one answer asks for, as the page and the API hand it over, and the limits on it: light enough for the page
to import before the model stack (app/stack.py); app/reasoning.py checks a Request and runs it.

    Request(question="…", example_id="maze-1", seed="7", via="api")
"""

from dataclasses import dataclass, field

from model.generation.modes import MODE_SPECS

MAX_NEW_TOKENS = 1024  # bounds the work one request can ask of a shared server
MAX_TEMPERATURE = 2.0  # beyond this sampling is uniform noise; the page's slider stops here too
MAX_SKETCHES = 64
MAX_DIFFUSION_STEPS = 1000
COMPARE_MODES = tuple(name for name, spec in MODE_SPECS.items() if spec.compare)  # the columns of Compare


@dataclass
class Request:
    question: str = ""
    files: list[str] = field(default_factory=list)  # uploaded image paths
    example_id: str = ""  # a shipped example (assets/examples) instead of uploads
    mode: str = "auto"  # one of model.generation.modes.MODES
    temperature: float = 0.0
    max_sketches: int = 4
    diffusion_steps: int = 0  # 0: the checkpoint's default T
    max_new_tokens: int = 256
    seed: int | str | None = 0  # text keeps seeds above 2**53 exact (a JSON number would round them)
    checkpoint: str = ""  # "": the app's default checkpoint
    snap: bool = True  # snap drawn latents to the checkpoint's codebook, when it has one (model/core/codebook.py)
    via: str = "page"  # "page" or "api": messages name the controls of the one the request came through
