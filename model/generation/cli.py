"""Generate a modal-mixed answer from the command line (`python -m model.generate`).

    python -m model.generate --image assets/examples/maze-1-problem-1.png --question "Which colour lies on the way?"
    python -m model.generate --checkpoint tiny --image x.png --question "..." --mode text-only --json

`--checkpoint` reads a name as the app does (model.core.checkpoint.locate): `demo` (the default) is the shipped
trained model, a registered name (`sweep/k32-l1`, `demo-parallel`) its folder, `tiny` and `demo-random` the
from-scratch presets with random weights (for smoke runs: a `note:` line says so wherever their text is printed),
else a checkpoint folder or a real Qwen2.5-VL checkpoint (hub id or folder); a hub id is looked up for at most
HUB_TIMEOUT_S (1.5 s) before anything downloads. The reasoning is printed with each sketch shown as
⟨START⟩[sketch n: K latents]⟨END⟩; `--json` prints the Trace instead (the note then goes to stderr);
`--event-log DIR` appends the answer's switch events to a store folder. Bad input — including a damaged checkpoint or
a hub that cannot be reached — gets one `error:` line on stderr and exit status 2, checked before anything is
generated.
"""

import argparse
import logging
import math
import sys
from pathlib import Path

from model.core.checkpoint import CheckpointError, load_model, locate
from model.core.paths import DEFAULT_CHECKPOINT, registered_folders
from model.generation.engine import Engine, Prompt
from model.generation.events import log_traces
from model.generation.inputs import (
    InputError,
    check_device,
    check_image_count,
    check_question,
    check_seed,
    load_image,
)
from model.generation.modes import mode_names
from model.generation.sampler_flags import add_sampler_flags, apply_sampler_flags, check_sampler_flags
from model.generation.settings import GenerationSettings


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as for every other bad input
        self.exit(2, f"error: {message}\n")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(prog="python -m model.generate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help="demo (the shipped trained model, default), a registered name, a checkpoint folder, a hub id, or tiny / "
        "demo-random (from-scratch presets with random weights)",
    )
    parser.add_argument("--image", action="append", default=[], help="problem image (repeat for a second one)")
    parser.add_argument("--question", required=True, help="the question about the image(s)")
    # modes that insert sketches (oracle, shuffled-latents) need them given with a prompt, which a shell cannot do
    parser.add_argument("--mode", default=GenerationSettings.mode, choices=mode_names(inserts=False))
    parser.add_argument("--seed", type=int, default=GenerationSettings.seed)
    parser.add_argument("--temperature", type=float, default=GenerationSettings.temperature, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=GenerationSettings.top_p)
    parser.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens)
    parser.add_argument("--max-sketches", type=int, default=GenerationSettings.max_sketches)
    add_sampler_flags(parser)
    parser.add_argument("--event-log", default=None, help="append switch events to this store folder")
    parser.add_argument("--json", action="store_true", help="print the Trace as JSON")
    parser.add_argument("--latents", action="store_true", help="with --json, include latents and conditions")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def check_args(args) -> tuple[str, list, GenerationSettings, str]:
    """Everything a user typed, checked before the model loads; InputError / ValueError name the problem.
    Returns (question, images, settings, device)."""
    question = check_question(args.question)
    check_image_count(len(args.image))
    images = [load_image(path) for path in args.image]
    if not math.isfinite(args.temperature) or not math.isfinite(args.top_p):
        raise InputError(f"--temperature and --top-p must be finite numbers, got {args.temperature}, {args.top_p}")
    check_sampler_flags(args)
    settings = GenerationSettings(
        mode=args.mode,
        max_new_tokens=args.max_new_tokens,
        max_sketches=args.max_sketches,
        diffusion_steps=args.diffusion_steps,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=check_seed(args.seed),
    )
    settings.check()
    if args.max_new_tokens > 4096:
        raise InputError(f"--max-new-tokens must be at most 4096, got {args.max_new_tokens}")
    if args.event_log and Path(args.event_log).exists() and not Path(args.event_log).is_dir():
        raise InputError(f"--event-log {args.event_log} is a file, not a folder")
    return question, images, settings, check_device(args.device)


def print_stream(engine, prompt, settings):
    trace = None
    for event in engine.stream([prompt], settings):
        if event.kind == "text":
            print(event.text, end="", flush=True)
        elif event.kind == "sketch_started":
            print(f"⟨START⟩[sketch {event.sketch.index + 1}: ", end="", flush=True)
        elif event.kind == "sketch_done":
            print(f"{event.sketch.num_latents} latents, {event.sketch.seconds:.2f}s]⟨END⟩", end="", flush=True)
        elif event.kind == "finished":
            trace = event.trace
    status = " (truncated)" if trace.truncated else ""
    timing = f"{trace.timings['total_s']:.2f}s"
    print(f"\n\nanswer: {trace.answer or '-'}{status} · {trace.num_sketches} sketches · {timing}")
    return trace


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        question, images, settings, device = check_args(args)
        located = locate(args.checkpoint, registered=registered_folders())  # a hub id: looked up within 1.5 s
        model = load_model(located.spec, device=device).eval()
        apply_sampler_flags(model, args, args.checkpoint)
        engine, prompt = Engine(model), Prompt(question, images)
    except (ValueError, CheckpointError) as err:  # InputError and CheckpointError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    if located.note:  # beside the text: on stdout before it, or on stderr when stdout is JSON
        print(f"note: {located.note}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        trace = engine.generate([prompt], settings)[0]
        print(trace.to_json(include_latents=args.latents, ensure_ascii=False))
    else:
        trace = print_stream(engine, prompt, settings)
    if args.event_log:
        try:
            log_traces(args.event_log, [trace], run_id="cli", checkpoint=args.checkpoint,
                       latent_budget=model.config.latent_budget,
                       diffusion_loss_weight=model.config.diffusion_loss_weight)  # fmt: skip
        except (ValueError, OSError) as err:  # the folder went away or became a file meanwhile
            print(f"error: could not log to {args.event_log}: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
