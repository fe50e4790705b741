"""Generate a modal-mixed answer from the command line.

    python -m model.generate --image assets/examples/maze.png --question "Which colour lies on the way?"
    python -m model.generate --checkpoint tiny --image x.png --question "..." --mode text-only --json

`--checkpoint` takes a checkpoint folder (default: the shipped demo model), a from-scratch preset name (`tiny`,
`demo`: randomly initialised, for smoke runs), or a real Qwen2.5-VL checkpoint (hub id or folder). The reasoning is
printed with each sketch shown as ⟨START⟩[sketch n: K latents]⟨END⟩; `--json` prints the Trace instead. Bad input
gets one line on stderr and exit status 2.
"""

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = str(Path(__file__).resolve().parent.parent / "assets" / "checkpoints" / "demo")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint folder, preset name or hub id")
    parser.add_argument("--image", action="append", default=[], help="problem image (repeat for several)")
    parser.add_argument("--question", required=True, help="the question about the image(s)")
    parser.add_argument("--mode", default="auto", choices=["auto", "text-only", "noise-latents"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-sketches", type=int, default=4)
    parser.add_argument("--diffusion-steps", type=int, default=None, help="T (default: the checkpoint's)")
    parser.add_argument("--event-log", default=None, help="append switch events to this store folder")
    parser.add_argument("--json", action="store_true", help="print the Trace as JSON")
    parser.add_argument("--latents", action="store_true", help="with --json, include latents and conditions")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from model.inputs import InputError, check_question, load_image

    try:  # cheap checks before the model loads
        check_question(args.question)
        for path in args.image:
            load_image(path)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from model.checkpoint import CheckpointError, load_model
    from model.engine import Engine, GenerationSettings, Prompt

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = load_model(args.checkpoint, device=device).eval()
        engine = Engine(model, event_log=args.event_log, checkpoint=args.checkpoint)
        settings = GenerationSettings(
            mode=args.mode,
            max_new_tokens=args.max_new_tokens,
            max_sketches=args.max_sketches,
            diffusion_steps=args.diffusion_steps,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
        )
        prompt = Prompt(question=args.question, images=args.image)
        if args.json:
            trace = engine.generate([prompt], settings)[0]
            print(trace.to_json(include_latents=args.latents, ensure_ascii=False))
            return 0
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
        if engine.event_log:
            engine.log_events([prompt], [trace])
        status = " (truncated)" if trace.truncated else ""
        print(
            f"\n\nanswer: {trace.answer or '-'}{status} · {trace.num_sketches} sketches · "
            f"{trace.timings['total_s']:.2f}s"
        )
        return 0
    except (InputError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
