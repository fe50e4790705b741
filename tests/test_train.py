"""Training: config checking, resume equivalence and resume errors, GRPO on a toy reward, the GRPO anchor, 2-process
accelerate (gloo) run, LoRA. The GRPO learning run and the 2-process run are marked slow (`python -m pytest -q -m
slow`)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from model.data.batches import SFTDataset, collate
from model.data.encoding import STYLES, encode_examples
from model.data.folders import load_rows
from model.data.visual_cache import load_or_compute
from model.data.zebra import load_examples
from model.sketchworld import write_dataset
from model.training import rewards
from model.training.cli import main, run
from model.training.grpo import group_advantages, grpo_loss, policy_weights
from model.training.loop import build_model
from model.training.recipe import forward_batch
from model.training.state import latest_checkpoint, list_checkpoints
from model.training.train_config import RETIRED_AT, STAGES, load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    write_dataset(str(out), per_family=4, seed=0, families=["count", "connect", "tilt"])
    return out


def tiny_config(tmp_path, data_dir, **extra):
    values = dict(stage="sft", init="tiny", data=str(data_dir), output_dir=str(tmp_path / "run"), batch_size=2,
                  lr=1e-3, warmup_steps=2, max_steps=6, save_every=3, log_every=1, tracker="none",
                  max_length=400)  # fmt: skip
    values.update(extra)
    path = tmp_path / "cfg.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items()))
    return path


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def steps(run_dir: Path) -> list[int]:
    """The steps logged in metrics.jsonl, in file order, repeats kept."""
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: sft\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key 'learning_rate'"):
        load_config(str(bad))
    bad.write_text("batch_size: eight\n")
    with pytest.raises(ValueError, match=r"batch_size must be int, got 'eight'"):
        load_config(str(bad))
    with pytest.raises(ValueError, match=r"command line: unknown key '--nope'"):
        load_config(None, ["--nope", "1"])
    with pytest.raises(ValueError, match=r"command line: lr must be float"):
        load_config(None, ["--lr", "fast"])
    cfg = load_config(str(ROOT / "model/configs/sft_tiny.yaml"), ["--lr", "3e-4", "--max_steps", "7"])
    assert cfg.lr == 3e-4 and cfg.max_steps == 7 and cfg.styles["interleaved"] == 0.8


def test_removed_experiments_keys_read_only_when_off(tmp_path):
    """A recipe written before an experiment's removal (sft_demo.yaml had `draw_query: false`) still loads; turning
    a removed experiment on is refused, naming the key and the commit that runs it."""
    old = tmp_path / "old.yaml"
    old.write_text("stage: sft\ndraw_query: false\nself_feed_passes: 1\nrollout_bank: ''\nlr: 0.001\n")
    assert load_config(str(old)).lr == 0.001
    assert load_config(None, ["--latent_loss_to_backbone", "true", "--rollout_fraction", "0"]) == load_config()
    for key, value in (("draw_query", "true"), ("self_feed_passes", "2"), ("rollout_bank", "bank.safetensors"),
                       ("warmup_locate_questions", "true"), ("latent_loss_to_backbone", "false")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"command line: {key} = .* removed experiment.*{RETIRED_AT}"):
            load_config(None, [f"--{key}", value])
    old.write_text("draw_query: true\n")
    with pytest.raises(ValueError, match=r"old.yaml: draw_query = True is a removed experiment"):
        load_config(str(old))


def test_shipped_recipes_load_and_name_what_exists():
    """Every recipe loads, is the stage its file name says, and names only answer styles and rewards that exist
    (load_config checks types, not these names: a typo would only fail once the run had loaded its data)."""
    recipes = sorted((ROOT / "model/configs").glob("*.yaml"))
    assert len(recipes) >= 9
    for path in recipes:
        cfg = load_config(str(path))
        assert cfg.stage == path.stem.split("_")[0] and cfg.stage in STAGES, path.name
        assert set(cfg.styles) <= set(STYLES), (path.name, cfg.styles)
        assert set(cfg.rewards) <= set(rewards.REWARDS), (path.name, cfg.rewards)
        assert 0 <= cfg.warmup_steps < cfg.max_steps and cfg.save_every <= cfg.max_steps, path.name


def test_resume_continues_with_the_same_losses(tmp_path, data_dir):
    cfg_path = tiny_config(tmp_path, data_dir)
    full = load_config(str(cfg_path), ["--output_dir", str(tmp_path / "full")])
    run(full)
    killed = load_config(str(cfg_path), ["--output_dir", str(tmp_path / "killed")])
    run(killed, stop_at=5)  # dies after step 5; the last checkpoint is step 3
    assert steps(tmp_path / "killed") == [1, 2, 3, 4, 5]
    run(killed, resume=True)  # steps 4 and 5 are logged again: the first run's lines for them are cut
    assert steps(tmp_path / "killed") == [1, 2, 3, 4, 5, 6]  # each step exactly once, in order
    resumed, reference = losses(tmp_path / "killed"), losses(tmp_path / "full")
    for step in range(1, 7):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7)
    assert (tmp_path / "full" / "checkpoint-000006" / "model" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, data_dir):
    """A finished 4-step run with checkpoints at steps 2 and 4: (config file, run folder)."""
    root = tmp_path_factory.mktemp("saved")
    cfg_path = tiny_config(root, data_dir, max_steps=4, save_every=2)
    run(load_config(str(cfg_path)))
    assert [p.name for p in list_checkpoints(root / "run")] == ["checkpoint-000002", "checkpoint-000004"]
    return cfg_path, root / "run"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage, file, problem",
    [
        (lambda p: p.write_text("{}"), "trainer_state.json", "is damaged: it lacks step, data, optimizer, scheduler"),
        (truncate, "trainer_state.json", "is damaged: not valid JSON"),
        (lambda p: p.write_text("[1, 2]"), "trainer_state.json", "is damaged: it lacks step"),
        (truncate, "optimizer.safetensors", "is damaged"),
        (truncate, "rng.safetensors", "is damaged"),
        (truncate, "model/model.safetensors", "is damaged"),
    ],
)
def test_resume_from_a_damaged_checkpoint_is_one_error_line(saved_run, tmp_path, capsys, damage, file, problem):
    cfg_path, saved = saved_run
    out = shutil.copytree(saved, tmp_path / "run")
    damage(out / "checkpoint-000004" / file)
    code = main(["--config", str(cfg_path), "--output_dir", str(out), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0] == err[-1], err
    assert f"{out / 'checkpoint-000004' / file} {problem}" in errors[0], errors[0]
    assert "Traceback" not in "\n".join(err)


def test_a_checkpoint_without_trainer_state_is_skipped_with_a_warning(saved_run, tmp_path):
    _, saved = saved_run
    out = shutil.copytree(saved, tmp_path / "run")
    (out / "checkpoint-000004" / "trainer_state.json").unlink()  # e.g. copied by hand without it
    with pytest.warns(UserWarning, match=r"checkpoint-000004 has no trainer_state\.json, so it cannot be resumed"):
        assert latest_checkpoint(out) == out / "checkpoint-000002"
    (out / ".checkpoint-000006.tmp-abc").mkdir()  # the staging folder of an interrupted save: not a checkpoint
    (out / "checkpoint-000002" / "trainer_state.json").unlink()
    with pytest.warns(UserWarning) as caught:
        assert list_checkpoints(out) == []
    assert sorted(str(w.message).split()[0] for w in caught) == [str(out / f"checkpoint-00000{s}") for s in (2, 4)]


def test_policy_weights_ignore_latent_slots():
    latent, start, end = 9, 7, 8
    labels = torch.tensor([[-100, -100, 5, start, latent, latent, end, 6, -100]])
    weights = policy_weights(labels, latent)
    # predicted targets are labels[1:]: prompt, 5, START, slot, slot, END, 6, pad
    assert weights.tolist() == [[0, 1, 1, 0, 0, 1, 1, 0]]


def test_grpo_loss_pieces():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5]), 4)
    assert adv[:4].sum().abs() < 1e-6 and adv[4:].abs().max() < 1e-6
    logp = torch.randn(2, 5)
    weights = torch.ones(2, 5)
    loss, stats = grpo_loss(logp, logp, logp, torch.tensor([1.0, -1.0]), weights, beta=0.1, clip=0.2)
    assert stats["kl"] == 0.0 and stats["clip_fraction"] == 0.0
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # ratio 1: the objective is A, which averages out


def _low_id_share(traces, answers, **_):
    """Toy reward: the share of answer tokens with an id below 200 (about 40 % for a random tiny model)."""
    out = []
    for t in traces:
        ids = [i for s in t.segments if s.kind == "text" for i in s.token_ids]
        out.append(sum(i < 200 for i in ids) / max(len(ids), 1))
    return out


@pytest.mark.slow
def test_grpo_raises_a_toy_reward(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(rewards.REWARDS, "low_ids", _low_id_share)
    cfg_path = tiny_config(tmp_path, data_dir, stage="grpo", rewards=["low_ids"], lr=5e-3, warmup_steps=0,
                           max_steps=40, save_every=40, grpo_prompts=4, grpo_group_size=6, grpo_max_new_tokens=10,
                           grpo_beta=0.0)  # fmt: skip
    cfg = load_config(str(cfg_path))
    final = run(cfg)
    rows = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kl"] == 0.0  # the policy starts as the reference
    first = sum(r["reward"] for r in rows[:5]) / 5
    last = sum(r["reward"] for r in rows[-5:]) / 5
    assert last > first + 0.15, f"mean reward {first:.2f} → {last:.2f}"
    trained, start = load_pretrained(final / "model"), build_preset("tiny")
    changed = (trained.backbone.lm_head.weight - start.backbone.lm_head.weight).abs().max()
    assert changed > 1e-3
    torch.testing.assert_close(trained.head.output.weight, start.head.output.weight)  # the head stays frozen


def _no_reward(traces, answers, **_):
    return [0.0] * len(traces)


def _true_sketch_text_loss(model, data_dir) -> float:
    """Stage 1's text loss of `model` on every tiny training trace fed its true sketches, computed apart from GRPO."""
    examples, _ = load_examples(load_rows(str(data_dir), "train", seed=0))
    encoded, _ = encode_examples(model, examples, {"interleaved": 1.0}, 0, 400)
    dataset = SFTDataset(encoded, load_or_compute(model, examples, data_dir / ".visual-cache"), "cached")
    batch = collate([dataset[i] for i in range(len(dataset))], model.tokenizer.pad_token_id)
    with torch.no_grad():
        return float(forward_batch(model.eval(), batch, diffusion_loss_weight=0.0).text_loss)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_grpo_anchor_is_the_only_pull_when_rewards_are_flat(tmp_path, data_dir, monkeypatch, weight):
    """With one reward for every rollout the advantages are zero and (β = 0, no weight decay) GRPO alone moves no
    weight; the anchor then is the whole update, and it lowers the true-sketch text loss, measured apart from it."""
    monkeypatch.setitem(rewards.REWARDS, "none", _no_reward)
    cfg_path = tiny_config(tmp_path, data_dir, stage="grpo", rewards=["none"], lr=3e-3, warmup_steps=0, max_steps=6,
                           save_every=6, grpo_prompts=2, grpo_group_size=2, grpo_max_new_tokens=6, grpo_beta=0.0,
                           weight_decay=0.0, grpo_anchor_weight=weight, grpo_anchor_batch=4)  # fmt: skip
    final = run(load_config(str(cfg_path)))
    trained, start = load_pretrained(final / "model"), build_preset("tiny")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if weight == 0:
        assert "anchor_loss" not in rows[0]
        torch.testing.assert_close(trained.backbone.lm_head.weight, start.backbone.lm_head.weight)
        return
    before, after = _true_sketch_text_loss(start, data_dir), _true_sketch_text_loss(trained, data_dir)
    assert after < 0.9 * before, f"true-sketch text loss {before:.3f} → {after:.3f}"
    assert rows[0]["anchor_loss"] == pytest.approx(before, rel=0.5)  # a batch of the same traces, same start


@pytest.mark.slow
@pytest.mark.parametrize(
    "fast", [{}, dict(mixed_precision="bf16", length_grouping=2, compile=True)], ids=["eager", "fast"]
)
def test_two_process_accelerate_run_keeps_ranks_identical(tmp_path, data_dir, fast):
    """Two CPU processes (gloo) stay identical, on the path before and on the fast path (bf16, grouping, compile)."""
    cfg_path = tiny_config(tmp_path, data_dir, max_steps=3, save_every=3, **fast)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(ROOT / "tests/scripts/ddp_probe.py"), str(cfg_path), str(tmp_path / "ddp")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [(tmp_path / "ddp" / f"rank{r}.txt").read_text().split() for r in range(2)]
    assert ranks[0][0] == ranks[1][0] == "2"
    assert ranks[0][1:] == ranks[1][1:]
    start = losses(tmp_path / "ddp")
    assert sorted(start) == [1, 2, 3]


def test_lora_trains_adapters_only_and_saves_merged(tmp_path, data_dir):
    cfg = load_config(str(tiny_config(tmp_path, data_dir, lora_rank=4, max_steps=2, save_every=2)))
    model = build_model(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # the adapters, the sketch tokens' rows (trainable tokens), and the wrapper's own new parameters (the latent head,
    # the cell position embeddings); no weight of the pretrained backbone
    assert any("lora_" in n for n in trainable) and any("trainable_tokens_delta" in n for n in trainable)
    allowed = ("lora_", "trainable_tokens_delta")
    assert all(any(a in n for a in allowed) or n.startswith("head.") or n in ("cell_rows", "cell_cols")
               for n in trainable), trainable  # fmt: skip
    final = run(cfg)
    merged, start = load_pretrained(final / "model"), build_preset("tiny")  # init "tiny" is build_preset("tiny")
    assert not any("lora" in n for n, _ in merged.named_parameters())  # a plain checkpoint: no LoRA keys left
    layer = "backbone.model.language_model.layers.0.self_attn.q_proj.weight"
    merged_weights, start_weights = dict(merged.named_parameters()), dict(start.named_parameters())
    assert (merged_weights[layer] - start_weights[layer]).abs().max() > 1e-6  # the trained adapter is merged in
    for name, weight in start.backbone.model.visual.named_parameters():  # frozen in stage 1
        torch.testing.assert_close(dict(merged.backbone.model.visual.named_parameters())[name], weight)
    # the sketch tokens' rows learned (in the tied input and output embeddings); every other row is the start's
    embedding, before = merged.backbone.get_input_embeddings().weight, start.backbone.get_input_embeddings().weight
    sketch_rows = [merged.start_id, merged.end_id]
    assert (embedding[sketch_rows] - before[sketch_rows]).abs().max() > 1e-6
    others = [i for i in range(len(before)) if i not in sketch_rows]
    torch.testing.assert_close(embedding[others], before[others])
    torch.testing.assert_close(merged.backbone.lm_head.weight, embedding)  # still tied


def test_sft_with_the_drawing_knobs_trains_and_saves_them(tmp_path, data_dir):
    """draw_weight on a model with one latent per cell: the drawing probe's loss is logged and falls, the probe's
    colours are those the sketches' descriptions use, and the saved model has the probe."""
    base = save_pretrained(build_preset("tiny", seed=0, image_size=112, latent_budget=64), tmp_path / "base")
    cfg = load_config(str(tiny_config(tmp_path, data_dir, init=str(base), max_length=1024, max_steps=8, save_every=8,
                                      lr=3e-3, draw_weight=1.0)))  # fmt: skip
    final = run(cfg)
    rows = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    draws = [r["draw_loss"] for r in rows if r["draw_loss"] > 0]  # 0: a batch of count puzzles (no sketch)
    assert len(draws) >= 4 and sum(draws[-2:]) < sum(draws[:2])
    model = load_pretrained(final / "model")
    assert model.draw_probe is not None
    assert set(model.config.cell_colours) >= {"white", "black", "blue"}  # connect's fill, walls and background
