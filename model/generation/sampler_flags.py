"""The sketch sampler's command-line flags, written once for `python -m model.generate` and `python -m model.evaluate`.

    add_sampler_flags(parser)          # --diffusion-solver, --diffusion-steps, --sketch-temperature, --snap,
                                       # --refine-passes
    check_sampler_flags(args)          # before anything loads: ValueError naming the flag and the value
    apply_sampler_flags(model, args)   # after loading: the checkpoint's own sampler, overridden where asked

Every flag defaults to the checkpoint's setting (its config.json, its sketch codebook); the diffusion steps travel
in `GenerationSettings`, the rest are set on the loaded model.
"""

import argparse

from model.core.diffusion_head import SOLVERS
from model.core.model_config import check_sketch_temperature


def add_sampler_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--diffusion-steps", type=int, default=None, help="T (default: the checkpoint's)")
    parser.add_argument(
        "--diffusion-solver", choices=SOLVERS, default=None, help="sampler (default: the checkpoint's)"
    )
    parser.add_argument(
        "--sketch-temperature",
        type=float,
        default=None,
        help="scale of the noise each sketch draw starts from (default: the checkpoint's)",
    )
    parser.add_argument(
        "--snap",
        choices=("on", "off"),
        default=None,
        help="snap drawn latents to the checkpoint's sketch codebook (default: on when it has one)",
    )
    parser.add_argument(
        "--refine-passes",
        type=int,
        default=None,
        help="parallel sketches: refinement passes, 0 … the R it was trained with (default: its R)",
    )


def check_sampler_flags(args: argparse.Namespace) -> None:
    """The checks that need no model; ValueError with the flag's name and value."""
    if args.diffusion_steps is not None and not 1 <= args.diffusion_steps <= 1000:
        raise ValueError(f"--diffusion-steps must be between 1 and 1000, got {args.diffusion_steps}")
    if args.sketch_temperature is not None:
        check_sketch_temperature(args.sketch_temperature, "--sketch-temperature")
    if args.refine_passes is not None and args.refine_passes < 0:
        raise ValueError(f"--refine-passes must be >= 0, got {args.refine_passes}")


def apply_sampler_flags(model, args: argparse.Namespace, checkpoint: str) -> None:
    """Override the loaded model's sampler where a flag asks; ValueError naming `checkpoint` when it cannot."""
    if args.diffusion_solver:
        model.config.diffusion_solver = args.diffusion_solver
    if args.sketch_temperature is not None:
        model.config.sketch_temperature = args.sketch_temperature
    if args.snap == "off":
        model.sketch_codebook = None
    elif args.snap == "on" and model.sketch_codebook is None:
        raise ValueError(f"--snap on: {checkpoint} has no sketch codebook (fit one: python -m model.codebook "
                         f"--checkpoint {checkpoint} --data DATA)")  # fmt: skip
    if args.refine_passes is not None:  # each pass was trained to draw the sketch: fewer is a valid setting
        trained = model.config.sketch_refine_passes
        if args.refine_passes > trained:
            raise ValueError(f"--refine-passes {args.refine_passes}: {checkpoint} was trained with {trained} "
                             f"refinement passes, so 0 … {trained}")  # fmt: skip
        model.config.sketch_refine_passes = args.refine_passes
