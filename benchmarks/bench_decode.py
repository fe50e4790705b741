"""Decode benchmark: text decode vs transformers `generate`, one sketch vs 8 text tokens, per-answer cost of a sketch,
and throughput — every ratio against a baseline measured in the same run.

    python benchmarks/bench_decode.py [--checkpoint assets/checkpoints/demo] [--textonly CKPT] [--sequential CKPT]
                                      [--write-readme]

(a) text decode throughput (tokens/s) of `Engine` in text-only mode vs `Qwen2_5_VLForConditionalGeneration.generate`
    on the same backbone, batch and prompt (greedy, both forced to write the same number of tokens);
(b) the wall time of one K-latent sketch at several T (the default solver), as a ratio to 8 text tokens (the
    one-pass-sketches issue's target: a sketch costs no more than 8 words), with K text tokens beside it;
(c) per answer, one puzzle at a time (what a visitor waits for), on the shipped example puzzles and on test
    puzzles of sketch-world: `auto` vs `noise-latents` (the same positions without the head) and `auto` vs the
    text-only-CoT model answering the same puzzles (`--textonly`, which writes each state out in words, given 448
    new tokens as the pipeline's audits give it: a 16×16 board takes 355–365), with the accuracy of each beside its
    time; with `--sequential`, the same for a checkpoint that draws its sketches one
    latent at a time (the paper's decoding);
(d) answers per second of `auto` at batch 1, 8 and 32 over the same test puzzles.
Without a trained checkpoint, the `demo` preset with random weights and a bias towards ⟨START⟩ is used for (a) and
(b) (decode cost does not depend on the weights' values); (c) and (d) need a trained one.
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
from benchmarks.doc_tables import markdown_table, write_section  # noqa: E402
from model.core.checkpoint import is_checkpoint_dir, load_model  # noqa: E402
from model.core.tokenizer import prompt_ids  # noqa: E402
from model.data.folders import load_rows, select_rows  # noqa: E402
from model.data.zebra import load_examples  # noqa: E402
from model.generation.answers import normalize_answer  # noqa: E402
from model.generation.cli import DEFAULT_CHECKPOINT  # noqa: E402
from model.generation.engine import Engine, GenerationSettings, Prompt  # noqa: E402
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def random_prompts(model, batch: int) -> list[Prompt]:
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
    prompts = random_prompts(model, batch)
    restore = force_tokens(model, None, never_eos=True)
    settings = GenerationSettings("text-only", max_new_tokens=new_tokens)
    ours = best_of(lambda: engine.generate(prompts, settings), repeats)
    restore()
    # the same batch through transformers' generate: left-padded ids, pixel values, mm_token_type_ids for 3-D rope
    ids = [prompt_ids(model.tokenizer, p.question, 1, model.tokens_per_image) for p in prompts]
    length, pad = max(map(len, ids)), model.tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (length - len(x)) + x for x in ids])
    mask = (torch.arange(length)[None] >= torch.tensor([length - len(x) for x in ids])[:, None]).long()
    pixel_values, grid = model.pixels([p.images[0] for p in prompts])
    # (the backbone embeds the image itself, without our cell positions: the same work, a different output)
    kwargs = dict(input_ids=input_ids, attention_mask=mask, pixel_values=pixel_values, image_grid_thw=grid,
                  mm_token_type_ids=(input_ids == model.image_token_id).int(), max_new_tokens=new_tokens,
                  min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=model.eos_id)  # fmt: skip
    theirs = best_of(lambda: model.backbone.generate(**kwargs), repeats)
    tokens = batch * new_tokens
    return tokens / ours, tokens / theirs


def sketch_costs(model, steps_list, repeats: int) -> tuple[float, dict]:
    """Seconds per K text tokens (decoding only, the prompt's prefill left out), and seconds per sketch at each T
    (single prompt): from ⟨START⟩ sampled to ⟨END⟩ written, every pass included."""
    K = model.latent_budget
    engine = Engine(model)
    prompt = random_prompts(model, 1)
    restore = force_tokens(model, None, never_eos=True)
    text = GenerationSettings("text-only", max_new_tokens=K)
    engine.generate(prompt, text)  # warm-up
    text_s = min(engine.generate(prompt, text)[0].timings["decode_s"] for _ in range(repeats))
    restore()
    restore = force_tokens(model, model.start_id, never_eos=True)
    per_sketch = {}
    for steps in steps_list:
        settings = GenerationSettings("auto", max_new_tokens=K + 2, max_sketches=1, diffusion_steps=steps)
        engine.generate(prompt, settings)  # warm-up (sampler coefficients for this T)
        per_sketch[steps] = min(engine.generate(prompt, settings)[0].sketches[0].seconds for _ in range(repeats))
    restore()
    return text_s, per_sketch


def shipped_examples() -> list:
    folder = ROOT / "assets" / "examples"
    records = json.loads((folder / "examples.json").read_text())
    return [(Prompt(r["question"], [Image.open(folder / n).convert("RGB") for n in r["problem_images"]]), r["answer"])
            for r in records]  # fmt: skip


def test_puzzles(data: str, per_family: int) -> list:
    rows = load_rows(data, "test")
    rows = select_rows(rows, len(set(rows["family"])) * per_family)  # round-robin: per_family of every family
    examples, _ = load_examples(rows)
    return [(Prompt(ex.question, ex.problem_images), ex.answer) for ex in examples]


def per_answer(model, puzzles: list, mode: str, max_new_tokens: int = GenerationSettings.max_new_tokens):
    """(median seconds per answer, accuracy) answering one puzzle at a time."""
    engine = Engine(model)
    settings = GenerationSettings(mode, max_new_tokens=max_new_tokens)
    engine.generate([puzzles[0][0]], settings)  # warm-up
    times, right = [], 0
    for prompt, answer in puzzles:
        trace = engine.generate([prompt], settings)[0]
        times.append(trace.timings["total_s"])
        right += trace.answer == normalize_answer(answer)
    return statistics.median(times), right / len(puzzles)


def throughput(model, puzzles: list, batch: int) -> float:
    engine, settings = Engine(model), GenerationSettings("auto")
    prompts = [p for p, _ in puzzles]
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        engine.generate(prompts[i : i + batch], settings)
    return len(prompts) / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--textonly", default=str(ROOT / "assets" / "checkpoints" / "baselines" / "text-cot"),
                        help="the text-only-CoT model for (c)")  # fmt: skip
    parser.add_argument("--sequential", default="", help="a checkpoint with sequential sketches, for (c) beside")
    parser.add_argument("--data", default=str(ROOT / "data" / "sketchworld"), help="sketch-world data (test split)")
    parser.add_argument("--per-family", type=int, default=10, help="test puzzles per family in (c) and (d)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trained = is_checkpoint_dir(args.checkpoint)
    model = load_model(args.checkpoint if trained else "demo").eval()
    shown = Path(args.checkpoint).resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    name = f"`{shown}`" if trained else "demo preset, random weights"
    K, T = model.latent_budget, model.config.diffusion_steps
    print(f"checkpoint: {name}; K = {K}; default T = {T}; {args.threads} threads")

    ours, theirs = text_throughput(model, args.batch, args.new_tokens, args.repeats)
    text_s, per_sketch = sketch_costs(model, sorted({1, 2, 5, 10, 50, T}), args.repeats)
    rows = [[f"(a) text decode, batch {args.batch} × {args.new_tokens} tokens", f"{ours:.0f} tok/s",
             f"{theirs:.0f} tok/s (transformers `generate`)", f"**{ours / theirs:.2f}×** throughput"]]  # fmt: skip
    decoding = model.config.sketch_decoding
    if decoding == "parallel":
        decoding += f", {model.config.sketch_refine_passes} refinement pass(es)"
    eight = 8 * text_s / K
    for steps, seconds in per_sketch.items():
        label = f"(b) one sketch ({decoding}), K = {K}, T = {steps}" + (" (default)" if steps == T else "")
        rows.append([label, f"{seconds * 1e3:.0f} ms", f"{eight * 1e3:.0f} ms (8 text tokens; {K}: "
                     f"{text_s * 1e3:.0f} ms)", f"**{seconds / eight:.2f}×** the time of 8"])  # fmt: skip
    if trained:
        textonly = load_model(args.textonly).eval() if is_checkpoint_dir(args.textonly) else None
        sequential = load_model(args.sequential).eval() if args.sequential else None
        sets = [("shipped examples", shipped_examples())]
        if (Path(args.data) / "test.parquet").exists():
            puzzles = test_puzzles(args.data, args.per_family)
            sets.append((f"test puzzles ({len(puzzles)})", puzzles))
        for label, puzzles in sets:
            auto_s, auto_acc = per_answer(model, puzzles, "auto")
            noise_s, noise_acc = per_answer(model, puzzles, "noise-latents")
            rows.append([f"(c) per answer, {label}: `auto` vs `noise-latents`", f"{auto_s * 1e3:.0f} ms "
                         f"({100 * auto_acc:.0f} % right)", f"{noise_s * 1e3:.0f} ms ({100 * noise_acc:.0f} % right)",
                         f"**{auto_s / noise_s:.2f}×** the time"])  # fmt: skip
            if textonly is not None:
                cot_s, cot_acc = per_answer(textonly, puzzles, "text-only", TEXT_COT_MAX_NEW_TOKENS)
                rows.append([f"(c) per answer, {label}: `auto` vs the text-only-CoT model", f"{auto_s * 1e3:.0f} ms "
                             f"({100 * auto_acc:.0f} % right)", f"{cot_s * 1e3:.0f} ms ({100 * cot_acc:.0f} % right)",
                             f"**{auto_s / cot_s:.2f}×** the time"])  # fmt: skip
            if sequential is not None:
                seq_s, seq_acc = per_answer(sequential, puzzles, "auto")
                rows.append([f"(c) per answer, {label}: `auto` vs the sequential-sketch model's `auto`",
                             f"{auto_s * 1e3:.0f} ms ({100 * auto_acc:.0f} % right)",
                             f"{seq_s * 1e3:.0f} ms ({100 * seq_acc:.0f} % right)",
                             f"**{auto_s / seq_s:.2f}×** the time"])  # fmt: skip
        puzzles = sets[-1][1]
        one = throughput(model, puzzles, 1)
        for batch in (1, 8, 32):
            rate = one if batch == 1 else throughput(model, puzzles, batch)
            rows.append([f"(d) `auto` throughput, batch {batch}", f"{rate:.2f} answers/s", f"{one:.2f} answers/s "
                         "(batch 1)", f"**{rate / one:.2f}×**"])  # fmt: skip
    table = markdown_table(["measurement", "ours", "baseline (same run)", "ratio"], rows)
    solver = model.config.diffusion_solver
    table += (f"\n\nMeasured on {name} (K = {K}, default T = {T}, {solver}), {args.threads} CPU threads; (a), (b) "
              f"best of {args.repeats}; (c) medians over puzzles answered one at a time.")  # fmt: skip
    print(table)
    if args.write_readme:
        write_section("decode", table)


if __name__ == "__main__":
    main()
