"""The Qwen2.5-VL path at its real size: the `qwen2.5-vl-3b` (or `-7b`) architecture with random weights through the
project's own training, generation and checkpoint code.

    python benchmarks/bench_backbone.py                                   # full depth (a GPU's work)
    python benchmarks/bench_backbone.py --text-layers 2 --vision-layers 2 --write-readme      # real widths, CPU

No weights can be downloaded here, so the script writes a folder laid out like the hub checkpoint: the architecture
written out in model/core/model_config.py (`pretrained_vlm_config`: the checkpoint's config.json values), random bf16
weights, and a stand-in tokenizer (byte-level BPE on sketch-world text with Qwen's chat and vision tokens; the
embedding matrix keeps Qwen's 151936 rows, so the LM head costs what the real one does). `--text-layers N
--vision-layers M` keep the first N text and M vision layers at the real widths. Then, on cuda when there is one,
else on the CPU, in bf16 where the device has it:

(a) sketch targets: one 448-px image through the frozen encoder (32×32 patches → 256 merged tokens), pooled to
    K = 32 (`ModalMixedModel.sketch_targets`);
(b) SFT steps of the recipe (model/configs/sft_qwen2.5-vl-3b.yaml: LoRA rank 64 on the language model, bf16; the
    recipe has no gradient checkpointing) through model.training's own `build_model` and `train_supervised`, on
    `--batch-size` copies of one Zebra-CoT-schema example of about `--tokens` tokens: a 448-px problem image, text,
    one sketch of K latents, more text (the text is filler sentences: only its length matters here). The recipe's
    warm-up is set to 0 so that the step changes the adapters; its gradient accumulation to 1 (one micro-batch a
    step). The first step pays one-time costs; the last is the one reported;
(c) one `auto` answer with one sketch through `model.generation.engine.Engine`, greedy, on the trained model (LoRA
    attached, as GRPO's rollouts run): a bias towards ⟨START⟩ (model/generation/debug.py) makes the random model
    start a sketch at once, and `max_sketches=1` bans a second;
(d) the LoRA-merged model saved (model/training/state.py `merged_state_dict`, model/core/checkpoint.py) and loaded
    back with `load_model`; the loaded model's logits are compared with the trained model's on the example.

Printed: per phase the wall time and peak memory (the process's peak RSS on the CPU, reset per phase through
/proc/self/clear_refs; torch.cuda.max_memory_allocated on a GPU), tokens/s, and the parameter counts (trainable vs
frozen). `--write-readme` writes the table into README.md between `<!-- bench:backbone:start -->` and its end marker.
"""

import argparse
import io
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from peft.tuners.lora import LoraLayer
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.doc_tables import markdown_table, write_section  # noqa: E402
from model.core.checkpoint import default_corpus, load_model, save_pretrained  # noqa: E402
from model.core.model_config import PRETRAINED_IMAGE_SIZE, PRETRAINED_TEXT, pretrained_vlm_config  # noqa: E402
from model.core.tokenizer import train_tokenizer  # noqa: E402
from model.data.encoding import encode_examples  # noqa: E402
from model.data.zebra import load_examples  # noqa: E402
from model.generation.debug import bias_towards_sketching  # noqa: E402
from model.generation.engine import Engine, GenerationSettings, Prompt  # noqa: E402
from model.training.loop import build_model, make_accelerator, training_rows  # noqa: E402
from model.training.sft import train_supervised  # noqa: E402
from model.training.state import merged_state_dict  # noqa: E402
from model.training.train_config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    "qwen2.5-vl-3b": "model/configs/sft_qwen2.5-vl-3b.yaml",
    "qwen2.5-vl-7b": "model/configs/sft_qwen2.5-vl-7b.yaml",
}
FILLER = (
    "The grid has four rows and four columns, and each cell holds one colour. ",
    "Moving the red block one step to the left leaves the blue cells where they were. ",
    "After the move, the second row reads green, red, empty, blue from left to right. ",
    "Counting again, three cells are yellow and none of them touches the border. ",
)


# ---- the device and its memory ---------------------------------------------------------------------------------
def device_and_precision() -> tuple[torch.device, str]:
    """cuda when there is one, else the CPU; bf16 where the device computes in it (the recipes' mixed precision)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), "bf16" if torch.cuda.is_bf16_supported() else "no"
    return torch.device("cpu"), "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    model = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        model = names[0] if names else model
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"CPU: {model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, no GPU"


class PeakMemory:
    """Peak memory of one phase: torch.cuda.max_memory_allocated on a GPU; on the CPU the process's peak RSS (VmHWM),
    whose high-water mark `reset` clears through /proc/self/clear_refs (Linux; elsewhere the peak since start)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif Path("/proc/self/clear_refs").is_file():
            Path("/proc/self/clear_refs").write_text("5")

    def peak_gb(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**30
        status = Path("/proc/self/status")
        if status.is_file():
            line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
            return int(line.split()[1]) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def phase(memory: PeakMemory, results: dict, name: str, fn):
    """Run `fn()`, recording its wall time and peak memory under `name`; returns what it returns."""
    memory.reset()
    start = time.perf_counter()
    out = fn()
    if memory.cuda:
        torch.cuda.synchronize()
    results[name] = {"seconds": time.perf_counter() - start, "peak_gb": memory.peak_gb()}
    print(f"{name}: {results[name]['seconds']:.1f} s, peak {results[name]['peak_gb']:.2f} GiB", flush=True)
    return out


# ---- the stand-in checkpoint and data ---------------------------------------------------------------------------
def standin_tokenizer():
    """A tokenizer folder's worth of Qwen stand-in: model/core/tokenizer.py's byte-level BPE on sketch-world text,
    with Qwen's chat and vision special tokens (and the sketch tokens, which from_backbone adds to a real one)."""
    trained = train_tokenizer(list(default_corpus()), 4096)
    return type(trained)(tokenizer_object=trained.backend_tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def write_backbone(folder: Path, preset: str, text_layers, vision_layers, device: torch.device, seed: int = 0):
    """A folder laid out like the hub checkpoint of `preset` (config.json, safetensors, tokenizer), random bf16
    weights; built on `device` (a 3B model's random init takes minutes on a CPU)."""
    tokenizer = standin_tokenizer()
    vocab = tokenizer.get_vocab()
    config = Qwen2_5_VLConfig.from_dict(pretrained_vlm_config(preset, text_layers, vision_layers))
    config.image_token_id, config.video_token_id = vocab["<|image_pad|>"], vocab["<|video_pad|>"]
    config.vision_start_token_id, config.vision_end_token_id = vocab["<|vision_start|>"], vocab["<|vision_end|>"]
    torch.manual_seed(seed)
    with device:
        backbone = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del backbone


def random_image(seed: int) -> Image.Image:
    size = PRETRAINED_IMAGE_SIZE
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def write_example_data(folder: Path, tokenizer, rows: int, tokens: int, latent_budget: int) -> None:
    """folder/train.parquet in the Zebra-CoT schema: `rows` copies (own ids) of one example of about `tokens`
    tokens, a 448-px problem image, a reasoning trace with one sketch (its picture a 448-px image) in its middle."""
    image_tokens = (PRETRAINED_IMAGE_SIZE // 28) ** 2
    text_budget = tokens - image_tokens - latent_budget - 30  # the chat template, image and sketch markers, eos
    sentences, used = [], 0
    while used < text_budget:
        sentence = FILLER[len(sentences) % len(FILLER)]
        sentences.append(sentence)
        used += len(tokenizer(sentence, add_special_tokens=False)["input_ids"])
    question = "[problem_image_1] " + "".join(sentences[:2]) + "What colour is the cell at row 2, column 3?"
    middle = 2 + (len(sentences) - 2) // 2
    trace = "".join(sentences[2:middle]) + "<image_start>[reasoning_image_1]<image_end>" + "".join(sentences[middle:])
    text, image = datasets.Value("string"), datasets.Image()
    features = datasets.Features({"Question": text, "Text Reasoning Trace": text, "Final Answer": text,
                                  "problem_image_1": image, "reasoning_image_1": image})  # fmt: skip
    columns = {"Question": [question] * rows, "Text Reasoning Trace": [trace + " The answer is red."] * rows,
               "Final Answer": ["red"] * rows, "problem_image_1": [png(random_image(2 * i)) for i in range(rows)],
               "reasoning_image_1": [png(random_image(2 * i + 1)) for i in range(rows)]}  # fmt: skip
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(folder / "train.parquet"))


# ---- the phases ---------------------------------------------------------------------------------------------------
def parameter_counts(model) -> dict:
    params = list(model.parameters())  # a tied weight once
    trainable = sum(p.numel() for p in params if p.requires_grad)
    lora = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    head = sum(p.numel() for p in model.head.parameters() if p.requires_grad)
    total = sum(p.numel() for p in params)
    return {"total": total, "trainable": trainable, "lora": lora, "head": head, "frozen": total - trainable}


def adapter_dtypes(model) -> str:
    return ", ".join(sorted({str(p.dtype) for n, p in model.named_parameters() if "lora_" in n})) or "none"


def sft_step_seconds(output_dir: Path, examples_per_step: int) -> list[float]:
    """Wall time of each logged step, from metrics.jsonl (examples_per_s is examples / the step's seconds)."""
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [examples_per_step / json.loads(line)["examples_per_s"] for line in lines]


def answer_once(model, image: Image.Image, new_tokens: int):
    """One greedy `auto` answer that draws exactly one sketch (the bias starts it; max_sketches bans a second)."""
    model.eval()
    plain = model.logits
    bias_towards_sketching(model, bias=1e4)
    try:
        settings = GenerationSettings("auto", max_new_tokens=new_tokens, max_sketches=1)
        trace = Engine(model).generate([Prompt("What colour is the cell at row 2, column 3?", [image])], settings)[0]
    finally:
        model.logits = plain
    return trace


@torch.no_grad()
def merge_check(trained, loaded) -> dict:
    """How the loaded weights of every LoRA layer compare with W + ΔW computed in float32 from the trained model:
    `rounded` is the share of them equal to that sum rounded to the stored dtype (1.0: saved and loaded exactly as
    merged), `kept` the share of the update ΔW they carry (projection; bf16 rounds a change smaller than half a step
    of its weight away), `relative_update` ‖ΔW‖ / ‖W‖."""
    loaded_weights = dict(loaded.named_parameters())
    equal = count = dot = norm = weight_norm = 0.0
    for name, layer in trained.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        base = layer.get_base_layer().weight.float()
        delta = sum(layer.get_delta_weight(adapter).float() for adapter in layer.active_adapters)
        saved = loaded_weights[f"{name}.weight"].float().to(base.device)
        ideal = (base + delta).to(layer.get_base_layer().weight.dtype).float()
        equal, count = equal + float((saved == ideal).sum()), count + saved.numel()
        dot, norm = dot + float(((saved - base) * delta).sum()), norm + float((delta * delta).sum())
        weight_norm += float((base * base).sum())
    return {"rounded": equal / count, "kept": dot / norm, "relative_update": (norm / weight_norm) ** 0.5}


@torch.no_grad()
def logits_gap(trained, loaded, example) -> tuple[float, float]:
    """Largest |Δ logit| between the two models on `example` (teacher-forced, true latents), and the largest
    |logit|, both over the response positions; each model in its own precision (the trained one under autocast)."""
    batch = {key: value.to(trained.device) if torch.is_tensor(value) else value for key, value in example.items()}
    response = batch.pop("response")
    first = trained(**batch).logits[0, response].float()
    second = loaded(**{k: v.to(loaded.device) for k, v in batch.items()}).logits[0, response].float()
    return float((first - second).abs().max()), float(first.abs().max())


def teacher_forced_input(model, encoded) -> dict:
    """The first encoded example as a forward's inputs (pixels, not cached features), and its response positions."""
    pixel_values, grid = model.pixels(encoded.problem_images)
    latents = model.sketch_targets([encoded.reasoning_images[i] for i in encoded.sketch_images]).flatten(0, 1)
    ids = torch.tensor([encoded.input_ids])
    return {"input_ids": ids, "latents": latents.float(), "pixel_values": pixel_values, "image_grid_thw": grid,
            "response": torch.arange(encoded.prompt_length, ids.shape[1])}  # fmt: skip


def run(args) -> dict:
    device, precision = device_and_precision()
    memory, results = PeakMemory(device), {}
    work = Path(args.workdir)
    backbone_dir, data_dir, run_dir = work / "backbone", work / "data", work / "run"
    for folder in (backbone_dir, data_dir, run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    recipe = RECIPES[args.preset]
    steps = args.steps
    overrides = ["--init", str(backbone_dir), "--data", str(data_dir), "--output_dir", str(run_dir),
                 "--mixed_precision", precision, "--batch_size", str(args.batch_size), "--grad_accum", "1",
                 "--warmup_steps", "0", "--max_steps", str(steps + 1), "--save_every", str(steps + 1),
                 "--log_every", "1", "--tracker", "none"]  # fmt: skip
    cfg = load_config(str(ROOT / recipe), overrides)
    print(f"device: {describe_device(device)}; mixed precision {precision}; recipe {recipe}; work folder {work}")

    phase(memory, results, "write the random-weight checkpoint folder",
          lambda: write_backbone(backbone_dir, args.preset, args.text_layers, args.vision_layers, device))  # fmt: skip
    accelerator = make_accelerator(cfg)
    torch.manual_seed(cfg.seed)
    model = phase(memory, results, "build", lambda: build_model(cfg))
    counts = parameter_counts(model)
    head_dtype = next(model.head.parameters()).dtype
    print(f"parameters: {counts['total'] / 1e6:.1f} M; trainable {counts['trainable'] / 1e6:.1f} M (LoRA "
          f"{counts['lora'] / 1e6:.1f} M, head {counts['head'] / 1e6:.1f} M); frozen {counts['frozen'] / 1e6:.1f} M; "
          f"backbone {model.dtype}, adapters {adapter_dtypes(model)}, head {head_dtype}")  # fmt: skip
    write_example_data(data_dir, model.tokenizer, args.batch_size, args.tokens, model.latent_budget)
    examples, _ = load_examples(training_rows(cfg))
    encoded, report = encode_examples(model, examples, cfg.styles, cfg.seed, cfg.max_length)
    if len(encoded) != args.batch_size:
        raise ValueError(
            f"the example did not encode ({report}); --tokens {args.tokens} > max_length {cfg.max_length}?"
        )
    length = len(encoded[0].input_ids)
    print(f"example: {length} tokens ({model.tokens_per_image} image tokens, one sketch of {model.latent_budget} "
          f"latents); batch {args.batch_size}")  # fmt: skip

    image = encoded[0].problem_images[0]
    targets = phase(memory, results, "(a) sketch targets", lambda: model.sketch_targets([image]))
    assert targets.shape == (1, model.latent_budget, model.config.hidden_size), targets.shape
    phase(memory, results, "(b) SFT", lambda: train_supervised(cfg, accelerator, model, None, stop_at=steps))
    step_seconds = sft_step_seconds(run_dir, args.batch_size)
    cache_bytes = sum(f.stat().st_size for f in (data_dir / ".visual-cache").glob("*.safetensors"))
    results["(b) SFT"].update(step_seconds=step_seconds, cache_mib_per_example=cache_bytes / args.batch_size / 2**20)
    print(f"visual cache: {cache_bytes / args.batch_size / 2**20:.1f} MiB per example (one problem image, one sketch)")
    print(f"SFT step seconds: {', '.join(f'{s:.1f}' for s in step_seconds)}; last: "
          f"{args.batch_size * length / step_seconds[-1]:.0f} tokens/s")  # fmt: skip

    trace = phase(memory, results, "(c) auto answer", lambda: answer_once(model, image, args.new_tokens))
    sketches = sum(1 for s in trace.segments if s.kind == "sketch")
    results["(c) auto answer"].update(positions=trace.num_positions, sketches=sketches, **trace.timings)
    print(f"answer: {trace.num_positions} positions, {sketches} sketch; prefill {trace.timings['prefill_s']:.1f} s, "
          f"decode {trace.timings['decode_s']:.1f} s (sketch {trace.timings['sketch_s']:.1f} s)")  # fmt: skip

    saved = work / "merged"
    phase(memory, results, "(d) save merged",
          lambda: save_pretrained(model, saved, state_dict=merged_state_dict(model)))  # fmt: skip
    results["(d) save merged"]["file_gb"] = (saved / "model.safetensors").stat().st_size / 2**30
    loaded = phase(memory, results, "(d) load", lambda: load_model(str(saved), device=device))
    gap, scale = logits_gap(model, loaded, teacher_forced_input(model, encoded[0]))
    merge = merge_check(model, loaded)
    results["(d) load"].update(max_logit_gap=gap, max_logit=scale, dtype=str(loaded.dtype), **merge)
    print(f"loaded model ({loaded.dtype}) vs trained (LoRA, {model.dtype}): max |Δ logit| {gap:.3g} of max |logit| "
          f"{scale:.3g}; LoRA weights as merged: {merge['rounded']:.1%}, update kept {merge['kept']:.1%} "
          f"(|ΔW| / |W| = {merge['relative_update']:.2g})")  # fmt: skip
    text = cfg_text(args, counts, length)
    return {"device": describe_device(device), "precision": precision, "text": text, "counts": counts,
            "length": length, "results": results, "work": str(work)}  # fmt: skip


def cfg_text(args, counts: dict, length: int) -> str:
    text = PRETRAINED_TEXT[args.preset]
    depth = f"{args.text_layers or text['num_hidden_layers']} of {text['num_hidden_layers']} text layers, "
    depth += f"{args.vision_layers or 32} of 32 vision layers"
    return f"{args.preset} at real widths, {depth}; {counts['total'] / 1e9:.2f} B parameters"


def table(summary: dict, args) -> str:
    r, counts, length = summary["results"], summary["counts"], summary["length"]
    sft, answer, load = r["(b) SFT"], r["(c) auto answer"], r["(d) load"]
    step = sft["step_seconds"][-1]
    rows = [
        ["build (load the folder with `load_model`, add LoRA)", f"{r['build']['seconds']:.1f} s",
         f"{r['build']['peak_gb']:.1f}", "-"],
        ["(a) sketch targets: one 448-px image → 256 tokens → K = 32", f"{r['(a) sketch targets']['seconds']:.2f} s",
         f"{r['(a) sketch targets']['peak_gb']:.1f}", "-"],
        [f"(b) one SFT step, batch {args.batch_size} × {length} tokens (last of {args.steps})", f"{step:.1f} s",
         f"{sft['peak_gb']:.1f}", f"{args.batch_size * length / step:.0f} tokens/s"],
        [f"(c) `auto` answer, {answer['positions']} positions, {answer['sketches']} sketch of K = 32",
         f"{answer['total_s']:.1f} s (prefill {answer['prefill_s']:.1f} s)", f"{answer['peak_gb']:.1f}",
         f"{(answer['positions']) / answer['decode_s']:.1f} positions/s decoding"],
        ["(d) save the LoRA-merged model", f"{r['(d) save merged']['seconds']:.1f} s",
         f"{r['(d) save merged']['peak_gb']:.1f}", f"{r['(d) save merged']['file_gb']:.2f} GiB file"],
        ["(d) load it back (`load_model`)", f"{load['seconds']:.1f} s", f"{load['peak_gb']:.1f}",
         f"{load['rounded']:.0%} of the LoRA weights are W + ΔW rounded to {load['dtype'].removeprefix('torch.')}, "
         f"which keeps {load['kept']:.0%} of ΔW (‖ΔW‖ / ‖W‖ = {load['relative_update']:.1g}); logits within "
         f"{load['max_logit_gap']:.2g} of the trained model's (up to {load['max_logit']:.2g})"],
    ]  # fmt: skip
    memory = "peak RSS of the process" if "CPU" in summary["device"] else "torch.cuda.max_memory_allocated"
    cache = sft["cache_mib_per_example"]
    note = (
        f"{summary['text']}: trainable {counts['trainable'] / 1e6:.1f} M (LoRA rank 64 {counts['lora'] / 1e6:.1f} M, "
        f"head {counts['head'] / 1e6:.1f} M), frozen {counts['frozen'] / 1e6:.1f} M. {summary['device']}; mixed "
        f"precision {summary['precision']}; memory is the {memory} in each phase. The visual cache holds "
        f"{cache:.1f} MiB per example (float16, the full 16 × 16 token grid of each image). "
        f"{load_note(summary['device'])}`python benchmarks/bench_backbone.py {' '.join(args.argv)}`."
    )
    return markdown_table(["phase", "time", "peak GiB", "throughput"], rows) + "\n\n" + note


def load_note(device: str) -> str:
    """On a CPU shared with other jobs the times depend on them: the load average when the run ended."""
    if "CPU" not in device or not hasattr(os, "getloadavg"):
        return ""
    return f"Load average {os.getloadavg()[0]:.1f} when the run ended (other jobs share the machine). "


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_backbone.py", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="qwen2.5-vl-3b", choices=sorted(RECIPES))
    parser.add_argument("--text-layers", type=int, default=None, help="keep the first N text layers (default all)")
    parser.add_argument("--vision-layers", type=int, default=None, help="keep the first M vision layers (default all)")
    parser.add_argument("--tokens", type=int, default=1024, help="length of the example (the recipe allows 2048)")
    parser.add_argument("--batch-size", type=int, default=1, help="copies of the example per step (recipe: 4 for 3B)")
    parser.add_argument("--steps", type=int, default=2, help="SFT steps; the last one is reported")
    parser.add_argument("--new-tokens", type=int, default=64, help="positions of the answer, the sketch's included")
    parser.add_argument(
        "--workdir", default=None, help="where the folders go and stay (default: a temporary folder, removed)"
    )
    parser.add_argument("--write-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-backbone-") as scratch:  # the folders take GBs: removed after
        args.workdir = args.workdir or scratch
        summary = run(args)
    markdown = table(summary, args)
    print(markdown)
    if args.write_readme:
        write_section("backbone", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
