"""Decode benchmark: our interleaved loop against transformers' `generate`, sketch cost vs T, auto vs text-only.

    python benchmarks/bench_decode.py [--checkpoint assets/checkpoints/demo] [--write-readme]

(a) text decode throughput (tokens/s) of `Engine` in text-only mode vs `Qwen2_5_VLForConditionalGeneration.generate`
    on the same backbone, batch and prompt (greedy, both forced to write the same number of tokens);
(b) the wall time of one K-latent sketch at T ∈ {5, 10, 25, 50}, as a ratio to the time of K text tokens;
(c) per-sample latency of `auto` vs `text-only` on the same prompts (the 12 shipped example puzzles).
Every ratio compares numbers measured in this run, on this machine. Without a trained checkpoint, the `demo` preset
is used with random weights and a bias towards ⟨START⟩ so that sketches happen (decode cost does not depend on the
weights' values).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.readme_table import markdown_table, write_section  # noqa: E402
from model.core.checkpoint import is_checkpoint_dir, load_model  # noqa: E402
from model.generation.cli import DEFAULT_CHECKPOINT  # noqa: E402
from model.generation.engine import Engine, GenerationSettings, Prompt  # noqa: E402


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prompts_for(model, batch: int) -> list[Prompt]:
    rng = np.random.default_rng(0)
    size = model.config.image_size
    images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(batch)]
    return [Prompt(f"Question {i}: how many red cells are there?", [img]) for i, img in enumerate(images)]


def force_tokens(model, forced: int | None, never_eos: bool):
    """Bias the logits: `forced` token always chosen (or never eos), to make lengths and sketches deterministic."""
    plain = model.logits

    def biased(hidden):
        out = plain(hidden)
        if never_eos:
            out[..., model.eos_id] = float("-inf")
        if forced is not None:
            out[..., forced] += 1e4
        return out

    model.logits = biased
    return lambda: setattr(model, "logits", plain)


def text_throughput(model, batch: int, new_tokens: int, repeats: int) -> tuple[float, float]:
    engine = Engine(model)
    prompts = prompts_for(model, batch)
    restore = force_tokens(model, None, never_eos=True)
    ours = best_of(
        lambda: engine.generate(prompts, GenerationSettings("text-only", max_new_tokens=new_tokens)), repeats
    )
    restore()
    # the same batch through transformers' generate: left-padded ids, pixel values, mm_token_type_ids for 3-D rope
    from model.core.tokenizer import prompt_ids

    ids = [prompt_ids(model.tokenizer, p.question, 1, model.tokens_per_image) for p in prompts]
    length, pad = max(map(len, ids)), model.tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (length - len(x)) + x for x in ids])
    mask = (torch.arange(length)[None] >= torch.tensor([length - len(x) for x in ids])[:, None]).long()
    pixel_values, grid = model.pixels([p.images[0] for p in prompts])
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=mask,
        pixel_values=pixel_values,
        image_grid_thw=grid,
        mm_token_type_ids=(input_ids == model.image_token_id).int(),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=pad,
        eos_token_id=model.eos_id,
    )
    theirs = best_of(lambda: model.backbone.generate(**kwargs), repeats)
    tokens = batch * new_tokens
    return tokens / ours, tokens / theirs


def sketch_costs(model, steps_list, repeats: int) -> tuple[float, dict]:
    """Seconds per K text tokens, and seconds per sketch at each T (single prompt)."""
    K = model.latent_budget
    engine = Engine(model)
    prompt = prompts_for(model, 1)
    restore = force_tokens(model, None, never_eos=True)
    text_s = best_of(lambda: engine.generate(prompt, GenerationSettings("text-only", max_new_tokens=K)), repeats)
    restore()
    restore = force_tokens(model, model.start_id, never_eos=True)
    per_sketch = {}
    for steps in steps_list:
        settings = GenerationSettings("auto", max_new_tokens=K + 2, max_sketches=1, diffusion_steps=steps)
        per_sketch[steps] = min(engine.generate(prompt, settings)[0].sketches[0].seconds for _ in range(repeats))
    restore()
    return text_s, per_sketch


def example_prompts() -> list[Prompt]:
    """The shipped example puzzles (assets/examples), so that a trained model really sketches in (c)."""
    folder = Path(__file__).resolve().parent.parent / "assets" / "examples"
    records = json.loads((folder / "examples.json").read_text())
    return [Prompt(r["question"], [Image.open(folder / name) for name in r["problem_images"]]) for r in records]


def latency(model, batch: int, repeats: int) -> dict:
    engine = Engine(model)
    prompts = example_prompts()
    out = {}
    for mode in ("auto", "text-only"):
        runs = [[t.timings["total_s"] for t in engine.generate([p], GenerationSettings(mode))] for p in prompts]
        out[mode] = statistics.median(x for run in runs for x in run)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = args.checkpoint if is_checkpoint_dir(args.checkpoint) else "demo"
    model = load_model(spec).eval()
    name = "demo preset, random weights" if spec == "demo" else Path(spec).name
    print(f"checkpoint: {name}; K = {model.latent_budget}; {args.threads} threads")

    ours, theirs = text_throughput(model, args.batch, args.new_tokens, args.repeats)
    text_s, per_sketch = sketch_costs(model, (5, 10, 25, 50), args.repeats)
    lat = latency(model, args.batch, 1)
    K = model.latent_budget
    rows = [
        [f"(a) text decode, batch {args.batch} × {args.new_tokens} tokens", f"{ours:.0f} tok/s",
         f"{theirs:.0f} tok/s (transformers `generate`)", f"**{ours / theirs:.2f}×** throughput"],
    ]  # fmt: skip
    for steps, seconds in per_sketch.items():
        rows.append([f"(b) one sketch, K = {K}, T = {steps}", f"{seconds * 1e3:.0f} ms",
                     f"{text_s * 1e3:.0f} ms ({K} text tokens)", f"**{seconds / text_s:.2f}×** the time"])  # fmt: skip
    auto, text_only = lat["auto"], lat["text-only"]
    label = f"(c) latency per sample, `auto` ({len(example_prompts())} example puzzles, median)"
    rows.append([label, f"{auto * 1e3:.0f} ms", f"{text_only * 1e3:.0f} ms (`text-only`)",
                 f"**{auto / text_only:.2f}×**"])  # fmt: skip
    table = markdown_table(["measurement", "ours", "baseline (same run)", "ratio"], rows)
    table += f"\n\nMeasured on {name}, {args.threads} CPU threads, best of {args.repeats}."
    print(table)
    if args.write_readme:
        write_section("decode", table)


if __name__ == "__main__":
    main()
