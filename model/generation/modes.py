"""The generation modes, one registry: what each does at ⟨START⟩ and where a sketch's latents come from.

    MODE_SPECS["noise-latents"].replace(model, noise)   # the latents a sketch gets instead of the head's
    MODE_SPECS["oracle"].given                          # "true": it inserts the puzzle's true sketches
    mode_names()                                        # every name, in the order lists and reports show them
    mode_names(compare=True)                            # the columns of the app's Compare view

| mode | ⟨START⟩ | latents |
|---|---|---|
| `auto` | the model decides | drawn by the latent head |
| `text-only` | banned | – |
| `direct` | banned; the answer is forced to begin with DIRECT_PREFIX | – |
| `noise-latents` | the model decides | Gaussian noise with the targets' per-dimension mean and std |
| `zero-latents` | the model decides | zeros |
| `shuffled-latents` | the model decides | given: the sketches `auto` drew for another puzzle of its family |
| `oracle` | the model decides | given: the puzzle's true sketches |

Adding a mode is one entry in `MODE_SPECS`: the engine dispatches on its fields, and every list derives from the
registry when it is read (`mode_names`: the evaluation's and the CLI's choices, the audit and the report, the app's
mode picker, Compare and the API's help). A mode that inserts sketches says where they come from (`given`): the
puzzle's true sketches, or another puzzle's that `auto` drew, optionally changed by `transform` (one sketch (K, D) →
(K, D)); the harness and the app fetch them, the engine inserts them. A model without a latent head can only run the
`language_only` modes; asked for another, it runs `text-only` and its Trace says so.
"""

from collections.abc import Callable
from dataclasses import dataclass

DIRECT_PREFIX = "The answer is"  # sketch-world answers end "The answer is X."; direct answers start there
# where the sketches an inserting mode takes come from: the puzzle's own true sketches (the targets of its reasoning
# images, model/data/targets.py), or the sketches `auto` drew for another puzzle of the same family
GIVEN_SOURCES = ("true", "other")


@dataclass(frozen=True)
class Mode:
    name: str
    label: str  # what it tests, in a few words (the app's mode picker and Compare columns)
    sketches: bool = True  # the model may open a sketch (⟨START⟩ is not banned)
    source: str = "generated"  # SketchSegment.source of the sketches whose latents this mode decides
    # (model, noise (n, D)) → (n, D): the latents a sketch gets instead of the head's drawing (noise: a standard
    # normal draw from the row's generator, the same draw the head would start from); None: the head draws
    replace: Callable | None = None
    # the sketches it inserts (Prompt.oracle_latents), the head's after them: one of GIVEN_SOURCES; None: none
    given: str | None = None
    transform: Callable | None = None  # one given sketch (K, D) → the sketch inserted (K, D); None: as given
    response_prefix: str = ""  # text every answer is forced to begin with
    language_only: bool = False  # runs without a latent head
    compare: bool = True  # a column of the app's Compare view (needs no setting of its own)

    def __post_init__(self):
        if self.given not in (None, *GIVEN_SOURCES):
            raise ValueError(f"mode {self.name}: given must be one of {GIVEN_SOURCES} or None, got {self.given!r}")
        if self.transform is not None and self.given is None:
            raise ValueError(f"mode {self.name}: a transform needs given sketches to transform")

    @property
    def inserts(self) -> bool:
        """Whether it inserts sketches given with the prompt."""
        return self.given is not None

    def insertable(self, sketches) -> list | None:
        """The sketches it inserts, a list of (K, D), from those of its `given` source ((m, K, D) or a list of
        (K, D)); None stays None."""
        if sketches is None:
            return None
        return [self.transform(s) for s in sketches] if self.transform is not None else list(sketches)


def _noise(model, noise):
    return model.latent_mean + model.latent_std * noise


def _zeros(model, noise):
    return noise.new_zeros(noise.shape)


MODE_SPECS: dict[str, Mode] = {
    spec.name: spec
    for spec in (
        Mode("auto", "its own sketches"),
        Mode("text-only", "no sketch (⟨START⟩ banned)", sketches=False, language_only=True),
        Mode(
            "direct",
            "the answer at once",
            sketches=False,
            response_prefix=DIRECT_PREFIX,
            language_only=True,
            compare=False,
        ),  # fmt: skip
        Mode("noise-latents", "noise sketches", source="noise", replace=_noise),
        Mode("zero-latents", "zero sketches", source="zero", replace=_zeros),
        Mode("shuffled-latents", "another puzzle's sketches", source="shuffled", given="other"),
        Mode("oracle", "the true sketches", source="oracle", given="true"),
    )
}


def mode_names(**fields) -> list[str]:
    """The modes whose specs have these field values, in registry order (none given: every mode), read from
    MODE_SPECS as it is now: `mode_names(compare=True)`, `mode_names(inserts=False)`, `mode_names(given="other")`."""
    return [name for name, spec in MODE_SPECS.items() if all(getattr(spec, k) == v for k, v in fields.items())]


def mode_labels(names: list[str] | None = None) -> str:
    """ "name: label; …" of `names` (every mode by default): the help of the app's mode picker and of the API."""
    return "; ".join(f"{name}: {MODE_SPECS[name].label}" for name in (mode_names() if names is None else names))


def check_mode(mode: str) -> str:
    if mode not in MODE_SPECS:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODE_SPECS)}")
    return mode
