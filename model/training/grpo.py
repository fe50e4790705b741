"""Stage 2: GRPO over interleaved text/latent answers, so the model learns *when* a sketch helps.

Each step takes `grpo_prompts` training prompts and samples G = `grpo_group_size` answers for each through the engine
(temperature sampling; sketches drawn by the diffusion head). Rewards come from model/rewards.py; the advantage of an
answer is its reward minus its group's mean, divided by the group's std (Shao et al. 2024). The loss is the clipped
ratio objective with a KL penalty to a frozen copy of the starting model (k3 estimator), averaged per answer over its
*text* positions — ⟨START⟩, ⟨END⟩ and ⟨eos⟩ included, latent slots excluded (their weight is zero): the latents are
inputs, not actions with a log-probability. The diffusion head and the vision encoder are frozen. Each rollout's
latents are stored in its Trace and fed back, unchanged, when log-probabilities are recomputed.

Anchor (`grpo_anchor_weight` > 0): each step also takes `grpo_anchor_batch` stage-1 training traces fed their *true*
sketches and adds this weight × their text loss, with stage 1's recipe knobs of this config (answer_weight,
blind_fraction; model/training/sft_batch.py). The rollouts only ever feed the model its own sketches, so without it
GRPO may let the reading of true sketches drift (docs/RESULTS.md › What we tried: oracle on fold and shift fell after
GRPO); the anchor is the supervised term PPO-ptx-style recipes mix in for the same reason.

Simplified: one batch of rollouts is used for `grpo_inner_steps` optimizer steps (1 by default, so the ratio starts
at exactly 1 and the clip only matters for the later inner steps); no reward model, no length normalisation tricks.
"""

import copy
import dataclasses
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from model.core.tokenizer import prompt_ids
from model.data.batches import SFTDataset
from model.data.encoding import asked, encode_examples
from model.data.visual_cache import load_or_compute
from model.data.zebra import load_examples
from model.generation.engine import Engine, Prompt
from model.generation.events import log_traces
from model.generation.settings import GenerationSettings
from model.training.batch_stream import BatchStream
from model.training.loop import MetricsLog, end_of_step, optimizer_and_schedule, training_rows
from model.training.recipe import split_batch
from model.training.rewards import total_reward
from model.training.sft_batch import prepare_batch
from model.training.state import latest_checkpoint, load_training_state, save_checkpoint


def rollout_tensors(model, prompts: list[Prompt], traces) -> dict:
    """Teacher-forcing inputs that reproduce each rollout: prompt + its answer, latents fed back, right-padded."""
    rows, labels, latents = [], [], []
    for prompt, trace in zip(prompts, traces):
        ids = prompt_ids(model.tokenizer, prompt.question, len(prompt.images), model.tokens_per_image)
        response = []
        for seg in trace.segments:
            if seg.kind == "text":
                response += seg.token_ids
            else:
                response += [model.start_id] + [model.latent_id] * seg.num_latents + [model.end_id]
                latents.append(torch.as_tensor(seg.latents))
        if not trace.truncated:
            response.append(model.eos_id)
        rows.append(ids + response)
        labels.append([-100] * len(ids) + response)
    length, pad = max(map(len, rows)), model.tokenizer.pad_token_id
    out = {
        "input_ids": torch.tensor([r + [pad] * (length - len(r)) for r in rows]),
        "labels": torch.tensor([r + [-100] * (length - len(r)) for r in labels]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows]),
        "latents": torch.cat(latents).to(model.dtype) if latents else None,
    }
    images = [img for p in prompts for img in p.images]
    if images:
        with torch.no_grad():
            pixel_values, grid = model.pixels(images)
            out["image_embeds"] = model.encode_images(pixel_values, grid).flatten(0, 1)
            out["image_grid_thw"] = grid
    return out


def policy_weights(labels: torch.Tensor, latent_id: int) -> torch.Tensor:
    """(B, L-1) weight of each predicted position: 1 on answer text (⟨START⟩/⟨END⟩/⟨eos⟩ included), 0 on the prompt,
    padding and latent slots."""
    targets = labels[:, 1:]
    return ((targets != -100) & (targets != latent_id)).float()


def token_logprobs(model, batch: dict) -> torch.Tensor:
    """log π(target | prefix) at every position: (B, L-1)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    targets = batch["labels"][:, 1:].clamp_min(0)
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / (groups.std(dim=1, keepdim=True) + 1e-4)).flatten()


def grpo_loss(logp, old_logp, ref_logp, advantages, weights, beta: float, clip: float) -> tuple[torch.Tensor, dict]:
    """Clipped-ratio objective + β·KL(π‖π_ref), averaged over each answer's text positions, then over answers."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(1)
    objective = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    log_ref_ratio = ref_logp - logp
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1  # k3: unbiased, always >= 0
    per_token = -(objective - beta * kl)
    counts = weights.sum(dim=1).clamp_min(1)
    loss = ((per_token * weights).sum(dim=1) / counts).mean()
    clipped = ((ratio < 1 - clip) & (adv < 0)) | ((ratio > 1 + clip) & (adv > 0))
    total = weights.sum().clamp_min(1)
    with torch.no_grad():
        stats = {"kl": float((kl * weights).sum() / total), "clip_fraction": float((clipped * weights).sum() / total)}
    return loss, stats


def per_family_metrics(families: list[str], traces, rewards: list[float]) -> dict:
    """Flat reward/<family> and start_rate/<family> over this step's rollouts."""
    out: dict[str, list] = {}
    for family, trace, reward in zip(families, traces, rewards):
        out.setdefault(family or "none", []).append((reward, trace.num_sketches > 0))
    metrics = {}
    for family, values in sorted(out.items()):
        metrics[f"reward/{family}"] = sum(r for r, _ in values) / len(values)
        metrics[f"start_rate/{family}"] = sum(s for _, s in values) / len(values)
    return metrics


def anchor_stream(cfg, model, examples, accelerator) -> BatchStream:
    """The anchor's batches: the training traces in this config's answer styles, teacher-forced on the cached true
    sketch targets (the same cache stage 1 reads), in a seeded resumable order."""
    encoded, _ = encode_examples(model, examples, cfg.styles, cfg.seed, cfg.max_length, cfg.paraphrase_share)
    cache = load_or_compute(model, examples, Path(cfg.data) / ".visual-cache", progress=accelerator.is_main_process)
    dataset = SFTDataset(encoded, cache, "cached")
    return BatchStream(dataset, cfg.grpo_anchor_batch, model.tokenizer.pad_token_id, cfg.seed,
                       accelerator.process_index, accelerator.num_processes)  # fmt: skip


def anchor_loss(cfg, policy, raw, stream: BatchStream, step: int, device) -> torch.Tensor:
    """Stage 1's text loss on the stream's next batch (true sketches fed in; no diffusion loss: the head is frozen)."""
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in stream.next().items()}
    inputs, terms = split_batch(prepare_batch(cfg, raw, batch, step))
    terms.diffusion_loss_weight = 0.0
    return policy(**inputs, terms=terms).text_loss


def train_grpo(cfg, accelerator, model, resume_from: Path | None, stop_at: int | None):
    """Stage 2 on `model`; returns the final checkpoint folder (`stop_at`: as in train_supervised)."""
    out = Path(cfg.output_dir)
    model.head.requires_grad_(False)
    model.backbone.model.visual.requires_grad_(False)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    examples, report = load_examples(training_rows(cfg), limit=cfg.max_examples or None)
    if accelerator.is_main_process:
        print(f"GRPO prompts: {report}")
    optimizer, scheduler = optimizer_and_schedule(cfg, model)
    policy, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(policy)
    anchor = anchor_stream(cfg, raw, examples, accelerator) if cfg.grpo_anchor_weight > 0 else None
    step = 0
    if resume_from is not None:
        state = load_training_state(resume_from, optimizer, scheduler, restore_optimizer=not cfg.lora_rank)
        step = state["step"]
        if anchor is not None and state["data"].get("streams"):
            anchor.restore(state["data"]["streams"][0])
    engine = Engine(raw)
    events, run_id = out / "events", f"grpo-{out.name}"
    settings = GenerationSettings(
        mode="auto",
        temperature=cfg.grpo_temperature,
        max_new_tokens=cfg.grpo_max_new_tokens,
        diffusion_steps=cfg.diffusion_steps or None,
        seed=cfg.seed,
    )
    metrics_log = MetricsLog(cfg, accelerator, step)
    config_yaml = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
    G = cfg.grpo_group_size
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc="grpo")
    while step < cfg.max_steps:
        if stop_at is not None and step >= stop_at:
            return out
        started = time.perf_counter()
        # 1. this step's prompts (a seeded choice, so a resumed run picks the same ones), G rollouts each
        chooser = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * accelerator.num_processes
                                                + accelerator.process_index)  # fmt: skip
        picks = torch.randint(len(examples), (cfg.grpo_prompts,), generator=chooser).tolist()
        seeds = torch.randint(2**31, (len(picks), G), generator=chooser).tolist()
        rollouts = [(examples[i], g, seeds[j][g]) for j, i in enumerate(picks) for g in range(G)]
        asked_as = [asked(ex, cfg.paraphrase_share, seed) for ex, _, seed in rollouts]  # some in other words
        prompts = [Prompt(ex.question, ex.problem_images, seed=seed) for ex, (_, _, seed) in zip(asked_as, rollouts)]
        raw.eval()
        traces = engine.generate(prompts, settings)
        raw.train()
        if accelerator.is_main_process:
            log_traces(events, traces, run_id=run_id, checkpoint=str(out), latent_budget=raw.config.latent_budget,
                       diffusion_loss_weight=raw.config.diffusion_loss_weight,
                       families=[ex.family for ex, _, _ in rollouts], example_ids=[ex.id for ex, _, _ in rollouts],
                       rollouts=[g for _, g, _ in rollouts], answers=[ex.answer for ex, _, _ in rollouts])  # fmt: skip
        answers = [ex.answer for ex, _, _ in rollouts]
        rewards = torch.tensor(total_reward(cfg.rewards, traces, answers))
        advantages = group_advantages(rewards, G).to(accelerator.device)
        # 2. log-probs of the sampled answers: old (for the ratio) and reference (for the KL), latents fed back
        batch = {
            k: v.to(accelerator.device) if torch.is_tensor(v) else v
            for k, v in rollout_tensors(raw, prompts, traces).items()
        }
        weights = policy_weights(batch["labels"], raw.latent_id)
        with torch.no_grad():
            old_logp = token_logprobs(raw, batch)
            ref_logp = token_logprobs(reference, batch)
        # 3. policy update(s)
        for _ in range(cfg.grpo_inner_steps):
            with accelerator.autocast():
                logp = token_logprobs(policy, batch)
            loss, stats = grpo_loss(logp, old_logp, ref_logp, advantages, weights, cfg.grpo_beta, cfg.grpo_clip)
            accelerator.backward(loss)
            if anchor is not None:
                with accelerator.autocast():
                    anchored = anchor_loss(cfg, policy, raw, anchor, step, accelerator.device)
                accelerator.backward(cfg.grpo_anchor_weight * anchored)
                stats["anchor_loss"] = float(anchored.detach())
            accelerator.clip_grad_norm_(policy.parameters(), cfg.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        metrics = {
            "loss": float(loss.detach()),
            "reward": float(rewards.mean()),
            "start_rate": sum(t.num_sketches > 0 for t in traces) / len(traces),
            "sketches_per_answer": sum(t.num_sketches for t in traces) / len(traces),
            "response_length": sum(t.num_positions for t in traces) / len(traces),
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
            **stats,
            **per_family_metrics([ex.family for ex, _, _ in rollouts], traces, rewards.tolist()),
        }
        bar.set_postfix(reward=f"{metrics['reward']:.2f}", kl=f"{metrics['kl']:.4f}")
        bar.update(1)
        data_state = {"streams": [anchor.position] if anchor else []}
        save = partial(save_checkpoint, out, step, raw, optimizer, scheduler, data_state, config_yaml, cfg.keep_last)
        end_of_step(cfg, accelerator, step, metrics, metrics_log, save)
    bar.close()
    accelerator.end_training()
    return latest_checkpoint(out)
