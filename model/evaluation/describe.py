"""Check stage 0: does the vision encoder carry the picture? Per-cell accuracy of greedy dense descriptions.

    python -m model.describe_eval --checkpoint runs/demo-warmup/checkpoint-000500/model --data data/sketchworld

Each validation image (problem and reasoning images) is described with "Describe the image."; the description is
parsed back into a grid of colour names (8×8, or 16×16 for sketch-world's big boards) and compared cell by cell
with the true grid. Each answer may be as long as the longest true description plus a margin (a 16×16 board's runs
to about 4× an 8×8 one's). Writes nothing unless
`--out FILE` is given (JSON with the accuracy, per family).
"""

import argparse
import json
import sys
from collections import defaultdict

import torch
from tqdm import tqdm

from model.core.atomic import write_text
from model.core.checkpoint import CheckpointError, load_model
from model.data.folders import load_rows
from model.data.warmup import DESCRIBE_PROMPT, DESCRIBE_SKETCH_PROMPT, parse_description, warmup_examples
from model.data.zebra import load_examples
from model.generation.engine import Engine, Prompt
from model.generation.settings import GenerationSettings

DESCRIBE_MARGIN = 16  # tokens past the longest true description (the eos, a few words the model may add)


def describe_accuracy(model, examples, batch_size: int = 16, progress: bool = True, as_sketch: bool = False) -> dict:
    """Per-cell accuracy of greedy descriptions of every described image: shown as a problem image, or with
    `as_sketch` as a sketch (the image's true latents inserted when the model opens one; oracle mode)."""
    items = [e for e in warmup_examples(examples, questions_per_image=0) if e.question == DESCRIBE_PROMPT]
    engine = Engine(model)
    mode = "oracle" if as_sketch else "text-only"
    longest = max((len(model.tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in items), default=0)
    budget = max(160, longest + DESCRIBE_MARGIN) + (model.latent_budget + 2 if as_sketch else 0)
    settings = GenerationSettings(mode=mode, max_new_tokens=budget)
    right, total = defaultdict(int), defaultdict(int)
    for start in tqdm(range(0, len(items), batch_size), disable=not progress, desc="describe"):
        batch = items[start : start + batch_size]
        if as_sketch:
            targets = model.sketch_targets([img for e in batch for img in e.problem_images])  # (n, K, D)
            prompts = [Prompt(DESCRIBE_SKETCH_PROMPT, [], oracle_latents=[targets[i]]) for i in range(len(batch))]
        else:
            prompts = [Prompt(DESCRIBE_PROMPT, e.problem_images) for e in batch]
        traces = engine.generate(prompts, settings)
        for example, trace in zip(batch, traces):
            truth = parse_description(example.answer)
            guess = parse_description(trace.text.strip()) or []
            for r, row in enumerate(truth):
                for c, colour in enumerate(row):
                    ok = r < len(guess) and c < len(guess[r]) and guess[r][c] == colour
                    right[example.family] += ok
                    total[example.family] += 1
    per_family = {f: right[f] / total[f] for f in total}
    return {"cell_accuracy": sum(right.values()) / max(sum(total.values()), 1), "per_family": per_family,
            "images": len(items)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.describe_eval")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="data/sketchworld")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=60, help="dataset rows (each gives 1–4 images)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        model = load_model(args.checkpoint).eval()
        rows = load_rows(args.data, args.split)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = rows.shuffle(seed=0).select(range(min(args.limit, len(rows))))
    examples, _ = load_examples(rows)
    with torch.no_grad():
        result = describe_accuracy(model, examples)
        if model.has_latent_head:
            result["as_sketch"] = describe_accuracy(model, examples, as_sketch=True)
    print(json.dumps(result, indent=1))
    if args.out:
        write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
