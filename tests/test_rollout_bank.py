"""The rollout bank (model/training/rollout_bank.py): the model's own free-running sketches, banked and fed to SFT.

python -m pytest -q tests/test_rollout_bank.py
"""

import json

import pytest
import torch
from safetensors.torch import save_file

from model.core.checkpoint import save_pretrained
from model.data.batches import SFTDataset, collate
from model.data.encoding import encode_example
from model.data.visual_cache import load_or_compute
from model.data.zebra import load_examples
from model.evaluation.harness import run_batch
from model.generation.engine import Engine, GenerationSettings
from model.sketchworld import load_split, write_dataset
from model.training import rollout_bank
from model.training.cli import run
from model.training.rollout_bank import RolloutBank, build_bank, first_sketch_image, load_bank, main, save_bank
from model.training.sft_batch import prepare_batch
from model.training.train_config import TrainConfig, load_config


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    write_dataset(str(out), per_family=3, seed=0, families=["maze", "count", "fold"])
    return out, load_examples(load_split(str(out), "train"))[0]


def test_bank_holds_what_auto_draws_and_round_trips(sketchy_model, examples, tmp_path):
    _, exs = examples
    bank = build_bank(sketchy_model, exs, batch_size=2, progress=False, source="sketchy")
    K = sketchy_model.config.latent_budget
    banked_ids = {example_id for example_id, _ in bank.index}
    assert not any(ex.family == "count" and ex.id in banked_ids for ex in exs)  # no sketch, nothing banked
    assert len(bank) > 0 and bank.latents.shape[1:] == (K, sketchy_model.config.hidden_size)
    # independently: the same puzzles answered in auto mode, one at a time, draw the same first sketch
    engine = Engine(sketchy_model)
    for ex in exs:
        key = (ex.id, first_sketch_image(ex))
        if key not in bank.index:
            continue
        trace = run_batch(engine, [ex], "auto", GenerationSettings(mode="auto"))[0]
        first = next(s for s in trace.sketches if s.num_latents == K)
        torch.testing.assert_close(bank.get(*key), torch.as_tensor(first.latents), atol=1e-4, rtol=1e-4)
    path = save_bank(tmp_path / "bank.safetensors", bank)
    again = load_bank(path)
    assert again.index == bank.index and again.source == "sketchy" and again.latent_budget == K
    torch.testing.assert_close(again.latents, bank.latents.half().float())
    assert not list(tmp_path.glob(".*.tmp"))  # the write was atomic: no staging file left


def test_bad_banks_are_named(tmp_path, sketchy_model):
    with pytest.raises(ValueError, match="does not exist"):
        load_bank(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a rollout bank"):
        load_bank(tmp_path / "junk.safetensors")
    save_file({"latents": torch.zeros(2, 4, 8)}, str(tmp_path / "other.safetensors"),
              metadata={"latent_budget": "4", "index": json.dumps([["a", 0, 5]])})  # fmt: skip
    with pytest.raises(ValueError, match="do not match its index"):
        load_bank(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="rollout_fraction > 0 needs rollout_bank"):
        TrainConfig(rollout_fraction=0.5).check()
    with pytest.raises(ValueError, match="rollout_fraction"):
        TrainConfig(rollout_fraction=1.5, rollout_bank="x").check()
    assert main(["--checkpoint", "tiny", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2


def test_dataset_and_batch_feed_banked_sketches_to_chosen_rows(tiny_model, examples, tmp_path):
    data, exs = examples
    model = tiny_model
    K, dim = model.config.latent_budget, model.config.hidden_size
    cache = load_or_compute(model, exs, tmp_path / "cache", progress=False)
    sketched = [ex for ex in exs if first_sketch_image(ex) is not None]
    banked = sketched[: len(sketched) // 2]
    latents = torch.randn(len(banked), K, dim, generator=torch.Generator().manual_seed(0))
    bank = RolloutBank(K, latents, {(ex.id, first_sketch_image(ex)): i for i, ex in enumerate(banked)})
    encoded = [encode_example(model, ex, "interleaved") for ex in sketched]
    encoded.append(encode_example(model, banked[0], "read-sketch"))  # a read-sketch row is never fed the bank
    dataset = SFTDataset(encoded, cache, own_sketches=bank)
    items = [dataset[i] for i in range(len(dataset))]
    for i, item in enumerate(items):
        own = i < len(banked)
        assert bool(item["has_own"]) == own
        if own:
            torch.testing.assert_close(item["own_latents"][:K], latents[i])
            torch.testing.assert_close(item["own_latents"][K:], item["latents"][K:])
        else:
            torch.testing.assert_close(item["own_latents"], item["latents"])
    batch = collate(items, model.tokenizer.pad_token_id)
    assert batch["has_own"].tolist() == [i < len(banked) for i in range(len(items))]
    cfg = TrainConfig(rollout_fraction=1.0, rollout_bank="b", max_steps=10)
    out = prepare_batch(cfg, model, batch, step=0)
    assert "own_latents" not in out and "has_own" not in out  # the model's forward never sees them
    torch.testing.assert_close(out["latents"], batch["own_latents"])  # every covered row fed, the rest as they were
    assert out["target_latents"] is batch["latents"]
    half = prepare_batch(TrainConfig(rollout_fraction=0.5, rollout_bank="b", self_feed_fraction=1.0, max_steps=10,
                                     self_feed_steps=1), model, batch, step=0)  # fmt: skip
    slot_rows = model.latent_slots(batch["input_ids"])[0]
    for row in range(len(banked)):  # a row fed the bank is not self-fed; a covered row not fed it is self-fed
        mine, own = half["latents"][slot_rows == row], batch["own_latents"][slot_rows == row]
        true = batch["latents"][slot_rows == row]
        assert torch.equal(mine, own) or not (torch.equal(mine, true) or torch.equal(mine, own))
    torch.testing.assert_close(half["target_latents"], batch["latents"])
    with pytest.raises(ValueError, match="K=3"):
        SFTDataset(encoded, cache, own_sketches=RolloutBank(3, torch.zeros(1, 3, dim), {("x", 0): 0}))


def test_sft_trains_on_a_bank_from_the_cli(tmp_path, examples, sketchy_model, monkeypatch):
    data, exs = examples
    base = save_pretrained(sketchy_model, tmp_path / "base")  # saved without its bias towards sketching, so
    monkeypatch.setattr(rollout_bank, "load_model", lambda spec: sketchy_model)  # the CLI draws with the live one
    assert main(["--checkpoint", str(base), "--data", str(data), "--batch-size", "4",
                 "--out", str(tmp_path / "bank.safetensors")]) == 0  # fmt: skip
    bank = load_bank(tmp_path / "bank.safetensors")
    assert len(bank) > 0 and bank.source == str(base)
    values = dict(stage="sft", init=str(base), data=str(data), output_dir=str(tmp_path / "run"), batch_size=2,
                  lr=1e-3, warmup_steps=1, max_steps=3, save_every=3, log_every=1, tracker="none", max_length=1024,
                  rollout_bank=str(tmp_path / "bank.safetensors"), rollout_fraction=1.0)  # fmt: skip
    (tmp_path / "cfg.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items()))
    final = run(load_config(str(tmp_path / "cfg.yaml")))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (final / "model").is_dir() and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
