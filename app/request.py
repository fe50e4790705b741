"""What one answer asks for, as the page and the API hand it over, and the limits on it: light enough for the page
to import before the model stack (app/stack.py); app/reasoning.py checks a Request into the engine's
GenerationSettings (model/generation/settings.py, where every setting's default is written) and a Prompt, and runs it.

    Request(question="…", example_id="maze-1", seed="7", via="api")
    Request.from_page(**values_of_the_page_inputs)        # the Reason tab's controls, named as the fields
    ApiInputs(example_id="maze-1", seed=7).request(examples, mode="auto")   # /reason's and /compare's parameters

`ApiInputs` is the one place the API's parameters are written: app/api.py exposes its fields (name, default, type
and help, which Gradio's API page and the MCP tool list read) as the parameters of /reason (all but `modes`) and
/compare (all but `mode`). The help of `mode` and `modes` is read from the modes registry when the API is built.
"""

from dataclasses import dataclass, field, fields

from model.generation.modes import mode_labels, mode_names
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS, GenerationSettings

MAX_NEW_TOKENS = 1024  # bounds the work one request can ask of a shared server
MAX_TEMPERATURE = 2.0  # beyond this sampling is uniform noise; the page's slider stops here too
MAX_SKETCHES = 64
MAX_DIFFUSION_STEPS = 1000
DEFAULTS = GenerationSettings()  # the engine's defaults, which are the page's and the API's


@dataclass(frozen=True)
class Baseline:
    """A Compare column of another registered model, on the same puzzle, settings and seed in one mode."""

    checkpoint: str  # its registry name
    mode: str  # the mode it answers in
    about: str  # what the column shows
    min_new_tokens: int = 0  # the fewest new positions it is given (more than asked when its traces are longer)


# the key names the column in the page and in /compare's "baselines"
BASELINES = {
    "text-cot": Baseline(
        "baseline/text-cot", "text-only", "the same puzzle reasoned in words", TEXT_COT_MAX_NEW_TOKENS
    ),
}


@dataclass
class Request:
    """An answer as asked: the puzzle, the checkpoint, and the generation settings as the user sent them (a number
    may be fractional, a seed text), each one of GenerationSettings' fields with its default."""

    question: str = ""
    files: list[str] = field(default_factory=list)  # uploaded image paths
    example_id: str = ""  # a shipped example (assets/examples) instead of uploads
    mode: str = DEFAULTS.mode  # one of model.generation.modes.MODE_SPECS
    temperature: float = DEFAULTS.temperature
    max_sketches: int = DEFAULTS.max_sketches
    diffusion_steps: int = 0  # 0: the checkpoint's default T (the engine's None)
    max_new_tokens: int = DEFAULTS.max_new_tokens
    seed: int | str | None = DEFAULTS.seed  # text keeps seeds above 2**53 exact (a JSON number would round them)
    checkpoint: str = ""  # "": the app's default checkpoint
    # snap drawn latents to the checkpoint's codebook when it has one (core/sketch_codebook.py; the engine's None)
    snap: bool = True
    via: str = "page"  # "page" or "api": messages name the controls of the one the request came through

    @classmethod
    def from_page(cls, checkpoint=None, example_id=None, files=None, question=None, mode=None, snap=None, **settings):
        """From the Reason tab's controls, named as the fields (an empty control gives None); `settings` are
        temperature, max_sketches, diffusion_steps, max_new_tokens and seed. Uploads win over a still-selected
        example."""
        files = list(files or [])
        return cls(question=question or "", files=files, example_id="" if files else (example_id or ""),
                   mode=mode or cls.mode, checkpoint=checkpoint or "", snap=cls.snap if snap is None else snap,
                   via="page", **settings)  # fmt: skip


def _arg(default, help):
    """An ApiInputs field: its default and the help the API page and the MCP tool list show (text, or a function
    that gives it: `help_of`)."""
    return field(default=default, metadata={"help": help})


def help_of(api_field) -> str:
    """The help of an ApiInputs field as the API shows it now."""
    help = api_field.metadata["help"]
    return help() if callable(help) else help


@dataclass
class ApiInputs:
    """The parameters of /reason and /compare, in the API's order."""

    image: str | None = _arg(
        None, "the puzzle picture (PNG or JPEG, at most 4096×4096 pixels and 20 MB); leave empty with example_id."
    )
    extra_image: str | None = _arg(None, "a second picture, for puzzles that have two (optional).")
    question: str = _arg("", "the question about the picture(s); with example_id it defaults to the example's.")
    mode: str = _arg(Request.mode, lambda: f"one of the modes ({mode_labels()}).")
    seed: str = _arg(str(Request.seed), "a whole number from 0 to 2**63 - 1, as text or an integer; not empty.")
    temperature: float = _arg(Request.temperature, f"sampling temperature from 0 (greedy) to {MAX_TEMPERATURE:g}.")
    max_sketches: float = _arg(
        Request.max_sketches, f"the most sketches an answer may draw, a whole number from 0 to {MAX_SKETCHES}."
    )
    diffusion_steps: float = _arg(
        Request.diffusion_steps,
        f"steps T of the sketch sampler, a whole number from 0 to {MAX_DIFFUSION_STEPS}; 0 uses the checkpoint's own.",
    )
    max_new_tokens: float = _arg(
        Request.max_new_tokens,
        f"the most positions an answer may write, a whole number from 1 to {MAX_NEW_TOKENS} (the text-only-CoT model, "
        f"baseline/text-cot, is given at least {TEXT_COT_MAX_NEW_TOKENS}: a 16×16 board takes it 355–365).",
    )
    example_id: str = _arg("", "a shipped example puzzle (see the examples tool), used instead of image.")
    checkpoint: str = _arg(
        "", '"" for the app\'s, or a folder, a preset, a hub id or a registered name (see checkpoints).'
    )
    include_latents: bool = _arg(False, "true to include each sketch's K × D latents (needed by the neighbours tool).")
    modes: list[str] | None = _arg(
        None, lambda: f"the modes to compare, from {', '.join(mode_names(compare=True))}; [] = all."
    )
    snap: bool = _arg(
        Request.snap,
        "true to snap drawn latents to the checkpoint's codebook (if any); false to feed them back as drawn.",
    )

    def request(self, examples: dict, mode: str | None = None) -> Request:
        """The Request these inputs ask for (`mode` overrides theirs: compare runs from auto); an example alone is a
        complete request, its question the example's."""
        example = examples.get(self.example_id or "")
        question = self.question
        if not question and example is not None and not (self.image or self.extra_image):
            question = example.question
        sent = {name: getattr(self, name) for name in ("temperature", "max_sketches", "max_new_tokens", "snap")}
        return Request(
            question=question or "",
            files=[f for f in (self.image, self.extra_image) if f],
            example_id=self.example_id or "",
            mode=mode or self.mode or Request.mode,
            diffusion_steps=self.diffusion_steps or 0,
            seed=self.seed,  # None stays: an empty seed is refused, not read as the default
            checkpoint=self.checkpoint or "",
            via="api",
            **{name: value for name, value in sent.items() if value is not None},  # None: the default
        )


def api_fields(leave_out: str) -> list:
    """ApiInputs' fields in order, without `leave_out` ("modes" for /reason, "mode" for /compare)."""
    return [f for f in fields(ApiInputs) if f.name != leave_out]
