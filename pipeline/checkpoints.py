"""Copying a trained checkpoint with the audit's sampler as its config's default (what ship and phase 2 start from).

For example:

    copy_model(runs.final("grpo"), runs.handoff(), sampler=("dpm++", 5), sketch_temperature=0.25)
"""

import json
import shutil
from pathlib import Path

from model.core.checkpoint import load_pretrained, save_pretrained


def copy_model(
    source: Path, target: Path, dtype=None, sampler: tuple | None = None, sketch_temperature=None, refine_passes=None
) -> None:
    """Save `source` at `target` (in `dtype`), with its latent decoder; `sampler` = (solver, T),
    `sketch_temperature` and, for parallel sketches, `refine_passes` (at most the trained ones) become the defaults
    of its config."""
    model = load_pretrained(source)
    if sampler is not None:
        model.config.diffusion_solver, model.config.diffusion_steps = sampler
    if sketch_temperature is not None:
        model.config.sketch_temperature = sketch_temperature
    if refine_passes is not None and model.parallel:
        if refine_passes > model.refine_passes:
            raise ValueError(f"{source} was trained with {model.refine_passes} refinement passes, not {refine_passes}")
        model.config.sketch_refine_passes = refine_passes
    save_pretrained(model, target, dtype=dtype)
    for extra in ("latent_decoder.safetensors", "latent_decoder.json"):
        if (source / extra).exists():
            shutil.copy2(source / extra, target / extra)


def sketch_decoding(folder: Path) -> str | None:
    """How the checkpoint in `folder` draws its sketches ("sequential" when its config predates the field); None when
    the folder has no config.json."""
    config = Path(folder) / "config.json"
    return json.loads(config.read_text()).get("sketch_decoding", "sequential") if config.exists() else None
