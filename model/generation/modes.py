"""The generation modes, one registry: what each does at ⟨START⟩ and where a sketch's latents come from.

    MODE_SPECS["noise-latents"].replace(model, noise)   # the latents a sketch gets instead of the head's
    MODES                                               # every name, in the order lists and reports show them

| mode | ⟨START⟩ | latents |
|---|---|---|
| `auto` | the model decides | drawn by the latent head |
| `text-only` | banned | – |
| `direct` | banned; the answer is forced to begin with DIRECT_PREFIX | – |
| `noise-latents` | the model decides | Gaussian noise with the targets' per-dimension mean and std |
| `zero-latents` | the model decides | zeros |
| `shuffled-latents` | the model decides | given with the prompt (another puzzle's own sketches), then the head's |
| `oracle` | the model decides | given with the prompt (the true sketches), then the head's |

Adding a mode is one entry in `MODE_SPECS`: the engine dispatches on its fields, and every list (the evaluation's
and the CLI's choices, the audit, the app's mode picker and Compare) derives from the registry. A model without a
latent head can only run the `language_only` modes; asked for another, it runs `text-only` and its Trace says so.
"""

from collections.abc import Callable
from dataclasses import dataclass

DIRECT_PREFIX = "The answer is"  # sketch-world answers end "The answer is X."; direct answers start there


@dataclass(frozen=True)
class Mode:
    name: str
    label: str  # what it tests, in a few words (the app's mode picker and Compare columns)
    sketches: bool = True  # the model may open a sketch (⟨START⟩ is not banned)
    source: str = "generated"  # SketchSegment.source of the sketches whose latents this mode decides
    # (model, noise (n, D)) → (n, D): the latents a sketch gets instead of the head's drawing (noise: a standard
    # normal draw from the row's generator, the same draw the head would start from); None: the head draws
    replace: Callable | None = None
    inserts: bool = False  # takes the sketches given with the prompt (Prompt.oracle_latents); the head's after them
    response_prefix: str = ""  # text every answer is forced to begin with
    language_only: bool = False  # runs without a latent head
    compare: bool = True  # a column of the app's Compare view (needs no setting of its own)


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
        Mode("shuffled-latents", "another puzzle's sketches", source="shuffled", inserts=True),
        Mode("oracle", "the true sketches", source="oracle", inserts=True),
    )
}

MODES = tuple(MODE_SPECS)
LANGUAGE_ONLY_MODES = tuple(m for m, s in MODE_SPECS.items() if s.language_only)
NO_SKETCH_MODES = tuple(m for m, s in MODE_SPECS.items() if not s.sketches)  # ⟨START⟩ banned
INSERTING_MODES = {m: s.source for m, s in MODE_SPECS.items() if s.inserts}  # mode → the inserted sketches' source
AUDIT_MODES = ("direct", "text-only", "auto", *(m for m, s in MODE_SPECS.items() if s.replace or s.inserts))
ABLATION_MODES = tuple(m for m in AUDIT_MODES if MODE_SPECS[m].sketches)  # auto and what replaces its latents


def check_mode(mode: str) -> str:
    if mode not in MODE_SPECS:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode
