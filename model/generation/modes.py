"""The generation modes, defined once: what the engine does at ⟨START⟩ and where a sketch's latents come from.

| mode | ⟨START⟩ | latents |
|---|---|---|
| `auto` | the model decides | drawn by the latent head |
| `text-only` | banned | – |
| `direct` | banned; the answer is forced to begin with DIRECT_PREFIX | – |
| `noise-latents` | the model decides | Gaussian noise with the targets' per-dimension mean and std |
| `zero-latents` | the model decides | zeros |
| `shuffled-latents` | the model decides | given with the prompt (another puzzle's own sketches), then the head's |
| `oracle` | the model decides | given with the prompt (the true sketches), then the head's |

A model without a latent head can only run the modes in LANGUAGE_ONLY_MODES; asked for another, it runs `text-only`
and its Trace says so.
"""

MODES = ("auto", "text-only", "direct", "noise-latents", "zero-latents", "shuffled-latents", "oracle")
LANGUAGE_ONLY_MODES = ("text-only", "direct")
NO_SKETCH_MODES = ("text-only", "direct")  # ⟨START⟩ banned
INSERTING_MODES = {"oracle": "oracle", "shuffled-latents": "shuffled"}  # mode → the inserted sketches' source
DIRECT_PREFIX = "The answer is"  # sketch-world answers end "The answer is X."; direct answers start there


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode
