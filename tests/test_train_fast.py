"""The training fast path (benchmarks/bench_train.py): what each technique must leave unchanged.

- torch.compile: the compiled step's loss and gradients equal the eager step's (float32: to 1e-4 relative);
- bf16 autocast: the loss within 2 % and every gradient pointing the same way (cosine ≥ 0.99) as float32's;
- length-grouped batches: every example once per epoch, resumable, less padding; and a row's loss does not depend on
  how much padding its batch has (so grouping rows differently computes the same per-row losses);
- resume after a kill continues the same loss curve on the fast path.
The compiled tests compile a tiny model (about half a minute each on two cores) and are marked slow.
"""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from model.data.batches import collate
from model.sketchworld import write_dataset
from model.training.batch_stream import BatchStream, grouped_window
from model.training.cli import run
from model.training.compiled import compile_for_training, is_compiled
from model.training.length_split import split_by_length
from model.training.loop import build_model
from model.training.loss_scale import LossScale
from model.training.sft import supervised_data, supervised_forward, supervised_step
from model.training.sft_batch import prepare_batch
from model.training.train_config import load_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw-fast")
    write_dataset(str(out), per_family=6, seed=0, families=["count", "connect", "fold"])
    return out


def config(tmp_path, data_dir, **extra):
    values = dict(stage="sft", init="tiny", data=str(data_dir), output_dir=str(tmp_path / "run"), batch_size=4,
                  lr=1e-3, warmup_steps=2, max_steps=6, save_every=3, log_every=1, tracker="none",
                  max_length=400, styles={"interleaved": 0.7, "text-only": 0.3})  # fmt: skip
    values.update(extra)
    path = tmp_path / "cfg.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items()))
    return load_config(str(path))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data_dir):
    """(config, model ready for stage 1, its dataset): the tiny preset after supervised_data."""
    tmp = tmp_path_factory.mktemp("fast")
    cfg = config(tmp, data_dir)
    torch.manual_seed(0)
    model = build_model(cfg)
    dataset = supervised_data(cfg, model, main=False)[0][1]
    return cfg, model, dataset


def loss_and_grads(cfg, model, batch, bf16: bool = False) -> tuple[float, dict]:
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        torch.manual_seed(7)  # the head's noise draws
        out = supervised_forward(cfg, model, model, batch, step=3)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(out.loss.detach()), grads


def a_batch(model, dataset, rows=(0, 1, 2, 3, 4, 5)):
    return collate([dataset[i] for i in rows], model.tokenizer.pad_token_id)


def test_bf16_autocast_step_matches_float32(prepared):
    cfg, model, dataset = prepared
    model = copy.deepcopy(model)
    batch = a_batch(model, dataset)
    loss32, grads32 = loss_and_grads(cfg, model, batch)
    loss16, grads16 = loss_and_grads(cfg, model, batch, bf16=True)
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert set(grads16) == set(grads32)
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[n].flatten() for n in grads32])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.99
    big = [n for n, g in grads32.items() if g.norm() > 1e-3 * flat32.norm()]  # the layers that carry the update
    for name in big:
        assert torch.nn.functional.cosine_similarity(grads32[name].flatten(), grads16[name].flatten(), dim=0) > 0.95


@pytest.mark.slow
def test_compiled_step_matches_eager(prepared):
    cfg, model, dataset = prepared
    eager, compiled = copy.deepcopy(model), copy.deepcopy(model)
    compile_for_training(compiled)
    assert is_compiled(compiled.backbone.model.language_model) and is_compiled(compiled.head.blocks[0])
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints keep their names
    for rows in ((0, 1, 2, 3), (4, 5, 6, 7, 8)):  # a second shape: dynamic, not a wrong reuse
        batch = a_batch(model, dataset, rows)
        loss_e, grads_e = loss_and_grads(cfg, eager, batch)
        loss_c, grads_c = loss_and_grads(cfg, compiled, batch)
        assert loss_c == pytest.approx(loss_e, rel=1e-4)
        for name, grad in grads_e.items():
            torch.testing.assert_close(grads_c[name], grad, rtol=1e-3, atol=1e-5)


def test_a_rows_loss_does_not_depend_on_its_batchs_padding(prepared):
    """Grouping changes which rows share a batch and so how much each is padded: the text loss of a row alone equals
    its text loss in a batch padded to a longer row (that row's labels masked)."""
    cfg, model, dataset = prepared
    model = copy.deepcopy(model).eval()
    lengths = [dataset.length(i) for i in range(len(dataset))]
    short, long = lengths.index(min(lengths)), lengths.index(max(lengths))
    assert lengths[long] > lengths[short] + 20
    alone = collate([dataset[short]], model.tokenizer.pad_token_id)
    padded = collate([dataset[short], dataset[long]], model.tokenizer.pad_token_id)
    padded["labels"][1] = -100
    assert padded["input_ids"].shape[1] == lengths[long]
    with torch.no_grad():
        one = supervised_forward(cfg, model, model, alone, step=0).text_loss
        two = supervised_forward(cfg, model, model, padded, step=0).text_loss
    torch.testing.assert_close(two, one, rtol=1e-5, atol=1e-6)


def test_constant_denominators_make_a_batchs_loss_the_sum_of_its_parts(prepared):
    """With LossScale's constants each row's text loss weighs the same in any batch, so a batch's loss is the sum of
    its rows' (how the rows are grouped no longer matters); and the constant is a random batch's expected sum."""
    cfg, model, dataset = prepared
    model = copy.deepcopy(model).eval()
    scale = LossScale.of(dataset, 4, answer_weight=5.0, blind_fraction=0.0, latent_id=model.latent_id)
    cfg5 = dataclasses.replace(cfg, answer_weight=5.0, blind_fraction=0.0)
    loss = lambda rows: supervised_forward(cfg5, model, model, a_batch(model, dataset, rows), 0, scale=scale).text_loss
    with torch.no_grad():
        torch.testing.assert_close(loss((0, 1, 2, 3)), loss((0, 1)) + loss((2, 3)), rtol=1e-5, atol=1e-6)
        unscaled = [supervised_forward(cfg5, model, model, a_batch(model, dataset, (i,)), 0) for i in range(4)]
    assert all(u.text_loss > 0 for u in unscaled)
    # the expected weighted label count of a batch of 4: the mean over rows of each row's sum, times 4
    sums = []
    for i in range(len(dataset)):
        item = dataset[i]
        counted = (item["labels"][1:] != -100) & (item["input_ids"][1:] != model.latent_id)
        sums.append(float((counted * (1 + 4 * item["answer_mask"][1:])).sum()))
    assert scale.text == pytest.approx(4 * sum(sums) / len(sums))
    latents = [int((dataset[i]["input_ids"] == model.latent_id).sum()) for i in range(len(dataset))]
    assert scale.latent == pytest.approx(4 * sum(latents) / len(latents))


@pytest.mark.parametrize("parts", [2, 3])
def test_a_batch_in_parts_of_like_length_gives_the_batchs_gradient(prepared, parts):
    """length_splits: the parts' losses add up to the whole batch's and so do their gradients (float32, eager; the
    head's noise drawn once per slot in both, so the diffusion term compares too)."""
    cfg, model, dataset = prepared
    model = copy.deepcopy(model)
    batch = a_batch(model, dataset, tuple(range(9)))
    whole_cfg = dataclasses.replace(cfg, answer_weight=5.0, blind_fraction=0.3)
    split_cfg = dataclasses.replace(whole_cfg, length_splits=parts)
    pieces = split_by_length(prepare_batch(split_cfg, model, batch, 3), parts, model)
    assert len(pieces) == parts and sum(p["input_ids"].shape[0] for p in pieces) == 9
    assert sum(p["input_ids"].numel() for p in pieces) < batch["input_ids"].numel()  # less padding
    grads = {}
    for name, step_cfg in (("whole", whole_cfg), ("split", split_cfg)):
        torch.manual_seed(11)
        model.zero_grad(set_to_none=True)
        with fixed_head_noise(model):
            losses = supervised_step(step_cfg, model, model, batch, step=3)
        grads[name] = ({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, losses)
    (whole, whole_losses), (split, split_losses) = grads["whole"], grads["split"]
    for key in ("loss", "text_loss", "latent_loss", "draw_loss", "answer_loss"):
        assert split_losses[key] == pytest.approx(whole_losses[key], rel=1e-4, abs=1e-6), key
    assert whole.keys() == split.keys()
    for name, grad in whole.items():
        torch.testing.assert_close(split[name], grad, rtol=1e-3, atol=1e-6)


class fixed_head_noise:
    """The diffusion head's training noise and timesteps as a function of the target alone (not of how many slots
    a forward holds), so a batch and its parts draw the same noise for each slot."""

    def __init__(self, model):
        self.head, self.loss = model.head, model.head.loss

    def __enter__(self):
        head = self.head

        def loss(target, cond, generator=None):
            target, cond = target.repeat(head.train_draws, 1), cond.repeat(head.train_draws, 1)
            key = (target.sum(-1) * 1e3).long().abs()  # a per-slot number from the target itself
            t = key % head.noise_scheduler.config.num_train_timesteps
            noise = torch.sin(target * 7.0 + key[:, None].float())
            x_t = head.noise_scheduler.add_noise(target, noise, t)
            goal = head.noise_scheduler.get_velocity(target, noise, t)
            return torch.nn.functional.mse_loss(head.predict(x_t, t, cond).float(), goal.float())

        head.loss = loss

    def __exit__(self, *exc):
        del self.head.loss  # back to the class's method


class Lengths:
    """A dataset of rows of given lengths (what BatchStream needs: len, length, items)."""

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def length(self, i):
        return self.lengths[i]

    def __getitem__(self, i):
        n = self.lengths[i]
        return {"input_ids": torch.full((n,), i), "labels": torch.zeros(n, dtype=torch.long)}


def rows_of(batch) -> list[int]:
    return [int(r[0]) for r in batch["input_ids"]]


def padding(batch) -> float:
    return 1 - float(batch["attention_mask"].float().mean())


def test_grouped_batches_keep_the_epoch_and_cut_padding():
    lengths = [int(x) for x in torch.randint(100, 330, (96,), generator=torch.Generator().manual_seed(0))]
    data = Lengths(lengths)
    plain, grouped = BatchStream(data, 4, 0, seed=1), BatchStream(data, 4, 0, seed=1, length_grouping=8)
    plain_batches = [plain.next() for _ in range(24)]
    grouped_batches = [grouped.next() for _ in range(24)]
    seen = [r for b in grouped_batches for r in rows_of(b)]
    assert sorted(seen) == list(range(96))  # every example exactly once in the epoch
    for w in range(3):  # each window holds the same examples as the padded stream's window
        window = slice(8 * w, 8 * (w + 1))
        assert sorted(r for b in grouped_batches[window] for r in rows_of(b)) == sorted(
            r for b in plain_batches[window] for r in rows_of(b)
        )
    mean = lambda batches: sum(map(padding, batches)) / len(batches)
    assert mean(grouped_batches) < 0.5 * mean(plain_batches)
    again = BatchStream(data, 4, 0, seed=1, length_grouping=8)  # deterministic
    assert [rows_of(again.next()) for _ in range(24)] == [rows_of(b) for b in grouped_batches]
    assert rows_of(grouped.next()) != rows_of(grouped_batches[0])  # epoch 1 is another order


def test_grouped_batches_resume_and_split_across_ranks():
    data = Lengths(list(range(50, 50 + 64)))
    stream = BatchStream(data, 2, 0, seed=3, length_grouping=4, world=2, rank=0)
    other = BatchStream(data, 2, 0, seed=3, length_grouping=4, world=2, rank=1)
    first = [(rows_of(stream.next()), rows_of(other.next())) for _ in range(6)]
    for a, b in first:  # the two ranks' halves of one global batch: neighbours in length, never the same row
        assert not set(a) & set(b) and max(a) <= min(b)
    resumed = BatchStream(data, 2, 0, seed=3, length_grouping=4, world=2, rank=0)
    resumed.restore({"epoch": 0, "batch": 3})
    assert [rows_of(resumed.next()) for _ in range(3)] == [a for a, _ in first[3:]]


def test_a_window_is_sorted_then_shuffled():
    lengths = {i: 1000 - i for i in range(12)}
    batches = grouped_window(list(range(12)), lengths, 3, torch.Generator().manual_seed(0))
    assert sorted(map(sorted, batches)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]  # sorted, cut in threes


def test_length_grouping_is_checked(tmp_path, data_dir):
    with pytest.raises(ValueError, match="length_grouping must be >= 0"):
        config(tmp_path, data_dir, length_grouping=-1)


@pytest.mark.slow
def test_resume_on_the_fast_path_continues_the_same_losses(tmp_path, data_dir):
    """bf16 autocast, length grouping and compile together: killed after step 5, resumed from step 3's checkpoint,
    the losses of steps 4–6 are the uninterrupted run's."""
    fast = dict(mixed_precision="bf16", length_grouping=2, compile=True)
    full = config(tmp_path, data_dir, output_dir=str(tmp_path / "full"), **fast)
    run(full)
    killed = config(tmp_path, data_dir, output_dir=str(tmp_path / "killed"), **fast)
    run(killed, stop_at=5)
    run(killed, resume=True)
    read = lambda d: {json.loads(x)["step"]: json.loads(x)["loss"] for x in (Path(d) / "metrics.jsonl").open()}
    reference, resumed = read(tmp_path / "full"), read(tmp_path / "killed")
    assert sorted(resumed) == list(range(1, 7))
    for step in range(1, 7):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-6)
