"""Parallel sketch decoding (model/core/slot_queries.py): the cached engine equals the teacher-forced layout, a batch
equals its rows alone, the query blocks never change the real positions, checkpoints keep their decoding, and the
audit's modes replace the drawn latents as they do for sequential sketches."""

import copy
import json

import numpy as np
import pytest
import torch
from sample_prompts import PROMPTS, image

from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from model.core.model_config import ModalMixedConfig
from model.core.slot_queries import add_query_blocks, sketch_numbers
from model.core.tokenizer import prompt_ids
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.sketchworld import write_dataset
from model.training.cli import run
from model.training.loop import build_model
from model.training.train_config import TrainConfig


def parallel_copy(model, refine_passes: int, temperature: float = 1.0):
    """A parallel-decoding copy of `model` with random slot queries (and refinement marker) that matter."""
    model = copy.deepcopy(model)
    model.set_sketch_decoding("parallel", refine_passes)
    model.config.sketch_temperature = temperature
    with torch.no_grad():
        generator = torch.Generator().manual_seed(5)
        model.slot_queries.queries.normal_(0, 0.5, generator=generator)
        model.slot_queries.refine.normal_(0, 0.5, generator=generator)
    return model


@pytest.fixture(scope="module", params=[0, 2], ids=["R0", "R2"])
def parallel_model(request, sketchy_model):
    return parallel_copy(sketchy_model, request.param)


def teacher_forced_inputs(model, prompt, trace):
    """The generated answer laid out as one teacher-forced row: ids, latents, and the kind of each response slot."""
    ids = prompt_ids(model.tokenizer, prompt.question, len(prompt.images), model.tokens_per_image)
    prompt_len, latents, kinds = len(ids), [], []
    for seg in trace.segments:
        if seg.kind == "text":
            ids += seg.token_ids
            kinds += ["text"] * len(seg.token_ids)
        else:
            ids += [model.start_id] + [model.latent_id] * seg.num_latents + [model.end_id]
            kinds += ["start"] + ["slot"] * seg.num_latents + ["end"]
            latents.append(torch.from_numpy(seg.latents))
    return torch.tensor([ids]), torch.cat(latents), prompt_len, kinds


def test_cached_parallel_decoding_equals_the_teacher_forced_layout(sketchy_model):
    """Greedy text and deterministic sketches (temperature 0), R = 2: the engine's query passes against the KV cache
    give the conditions the teacher-forced layout gives pass by pass, and every greedy token is the argmax of the
    full forward's logits (the text after a sketch reads the latents the engine wrote into the cache)."""
    model = parallel_copy(sketchy_model, 2, temperature=0.0)
    prompt = PROMPTS[1]
    settings = GenerationSettings(max_new_tokens=40, max_sketches=100, seed=3)
    trace = Engine(model).generate([prompt], settings)[0]
    assert trace.num_sketches >= 1 and all(s.decoding == "parallel" and s.refine_passes == 2 for s in trace.sketches)
    input_ids, latents, prompt_len, kinds = teacher_forced_inputs(model, prompt, trace)
    pixel_values, grid = model.pixels(prompt.images)
    K, steps = model.latent_budget, model.config.diffusion_steps
    slot_index = torch.arange(K).repeat(trace.num_sketches)
    previous = []
    with torch.no_grad():
        for _ in range(model.refine_passes + 1):  # each pass re-draws from the previous one, as the engine does
            out = model(input_ids, latents=latents, pixel_values=pixel_values, image_grid_thw=grid,
                        refine_latents=previous, with_slot_states=True)  # fmt: skip
            cond = model.head.condition(out.slot_states, slot_index)
            zero = torch.zeros(len(slot_index), latents.shape[-1])
            sampled = model.head.sample(cond, steps, noise=zero, solver=model.config.diffusion_solver)
            drawn = model.destandardize(sampled)
            previous.append(drawn)
    conditions = np.concatenate([s.conditions for s in trace.sketches])
    np.testing.assert_allclose(conditions, cond.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(latents.numpy(), drawn.numpy(), atol=1e-4, rtol=1e-4)  # no codebook: as drawn
    logits = out.logits[0]
    for offset, kind in enumerate(kinds):
        if kind in ("text", "start"):
            masked = logits[prompt_len + offset - 1].clone()
            masked[Engine(model).banned_ids + [model.end_id]] = float("-inf")
            if settings.max_new_tokens - offset < K + 2:
                masked[model.start_id] = float("-inf")
            assert int(masked.argmax()) == int(input_ids[0, prompt_len + offset]), f"response position {offset}"


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_batch_equals_single_runs(parallel_model, temperature):
    engine = Engine(parallel_model)
    settings = GenerationSettings(max_new_tokens=40, temperature=temperature, seed=11)
    batched = engine.generate(PROMPTS, settings)
    singles = [engine.generate([p], settings)[0] for p in PROMPTS]
    assert sum(t.num_sketches for t in batched) > 0
    starts = {s.start_position for t in batched for s in t.sketches}
    assert temperature == 0 or len(starts) > 1, "rows should open sketches at different steps"
    for a, b in zip(batched, singles):
        assert [s.token_ids for s in a.segments if s.kind == "text"] == [
            s.token_ids for s in b.segments if s.kind == "text"
        ]
        assert [(s.start_position, s.end_position) for s in a.sketches] == [
            (s.start_position, s.end_position) for s in b.sketches
        ]
        for sa, sb in zip(a.sketches, b.sketches):
            np.testing.assert_allclose(sa.latents, sb.latents, atol=1e-4)


def test_query_blocks_leave_the_real_positions_alone(parallel_model):
    """The same rows with and without the query blocks (a loss asks for them, plain logits do not): equal logits,
    so nothing the text reads depends on the queries; and the queries do depend on what precedes ⟨START⟩."""
    model = parallel_model
    trace = Engine(model).generate([PROMPTS[0]], GenerationSettings(max_new_tokens=40, seed=2))[0]
    input_ids, latents, _, _ = teacher_forced_inputs(model, PROMPTS[0], trace)
    pixel_values, grid = model.pixels(PROMPTS[0].images)
    labels = input_ids.masked_fill(input_ids == model.latent_id, -100)
    previous = [latents] * model.refine_passes
    with torch.no_grad():
        plain = model(input_ids, latents=latents, pixel_values=pixel_values, image_grid_thw=grid)
        with_blocks = model(input_ids, labels=labels, latents=latents, pixel_values=pixel_values,
                            image_grid_thw=grid, refine_latents=previous)  # fmt: skip
        other_picture = model(input_ids, labels=labels, latents=latents, refine_latents=previous,
                              **dict(zip(("pixel_values", "image_grid_thw"), model.pixels([image(9)]))))  # fmt: skip
    assert plain.slot_states is None and with_blocks.latent_loss is not None
    torch.testing.assert_close(plain.logits, with_blocks.logits, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(with_blocks.slot_states, other_picture.slot_states)


def test_query_block_layout_by_hand():
    """Two rows, three sketches of K = 2, one pass: columns, positions and mask against hand-written values."""
    ids = torch.tensor([[7, 1, 9, 9, 2, 1, 9, 9, 2], [7, 7, 7, 1, 9, 9, 2, 0, 0]])  # 1 START, 9 slot, 2 END
    rows, positions_ = (ids == 9).nonzero(as_tuple=True)
    slot_index = torch.tensor([0, 1, 0, 1, 0, 1])
    number, per_row = sketch_numbers(rows, slot_index, 2)
    assert number.tolist() == [0, 0, 1, 1, 0, 0] and per_row.tolist() == [2, 1]
    L = ids.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool).tril().expand(2, 1, L, L)
    pos = torch.arange(L).expand(3, 2, L)
    inputs = [torch.arange(6, dtype=torch.float).unsqueeze(1).expand(6, 3) + 100]
    embeds, positions, mask, columns = add_query_blocks(torch.zeros(2, L, 3), pos, causal, rows, positions_,
                                                         slot_index, inputs, 2)  # fmt: skip
    assert embeds.shape == (2, L + 4, 3) and columns.tolist() == [[9, 10, 11, 12, 9, 10]]
    assert positions[0, 0, 9:].tolist() == [2, 3, 6, 7] and positions[0, 1, 9:11].tolist() == [4, 5]
    assert embeds[0, 11, 0] == 102 and embeds[1, 10, 0] == 105
    assert mask[0, 0, 11].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5, 11, 12]  # up to its ⟨START⟩ (5)
    assert mask[1, 0, 9].nonzero().flatten().tolist() == [0, 1, 2, 3, 9, 10]
    assert not mask[:, 0, :L, L:].any()  # no real position sees a query
    assert mask[1, 0, 11].nonzero().flatten().tolist() == [11]  # an unused column sees itself only


def test_audit_modes_replace_the_drawn_latents(parallel_model):
    engine = Engine(parallel_model)
    settings = GenerationSettings(max_new_tokens=40, seed=4)
    zero = engine.generate(PROMPTS[:2], GenerationSettings(max_new_tokens=40, seed=4, mode="zero-latents"))
    assert all(s.source == "zero" and not s.latents.any() for t in zero for s in t.sketches)
    noise = engine.generate(PROMPTS[:2], GenerationSettings(max_new_tokens=40, seed=4, mode="noise-latents"))
    assert all(s.source == "noise" and s.conditions is None for t in noise for s in t.sketches)
    K, D = parallel_model.latent_budget, parallel_model.config.hidden_size
    given = [torch.full((K, D), float(i)) for i in range(1, 9)]
    oracle = engine.generate([Prompt(p.question, p.images, oracle_latents=given) for p in PROMPTS[:2]],
                             GenerationSettings(max_new_tokens=40, seed=4, mode="oracle"))  # fmt: skip
    for t in oracle:
        for s in t.sketches:
            assert s.source == "oracle" and np.allclose(s.latents, s.index + 1)
    auto = engine.generate(PROMPTS[:2], settings)
    assert all(s.source == "generated" and s.conditions.shape == (K, D) for t in auto for s in t.sketches)


def test_streaming_gives_one_event_per_pass(parallel_model):
    events = list(Engine(parallel_model).stream([PROMPTS[0]], GenerationSettings(max_new_tokens=40, seed=1)))
    kinds = [e.kind for e in events]
    per_sketch = parallel_model.refine_passes + 1
    assert kinds.count("sketch_pass") == per_sketch * kinds.count("sketch_started") > 0
    first = kinds.index("sketch_started")
    assert kinds[first + 1 : first + 1 + per_sketch] == ["sketch_pass"] * per_sketch
    assert [e.pass_index for e in events[first + 1 : first + 1 + per_sketch]] == list(range(per_sketch))


def test_checkpoints_keep_their_decoding(parallel_model, sketchy_model, tmp_path):
    save_pretrained(parallel_model, tmp_path / "parallel")
    again = load_pretrained(tmp_path / "parallel").eval()
    again.logits = parallel_model.logits  # the test bias towards sketching is not a weight
    assert again.parallel and again.refine_passes == parallel_model.refine_passes
    settings = GenerationSettings(max_new_tokens=40, seed=6)
    a, b = Engine(parallel_model).generate(PROMPTS, settings), Engine(again).generate(PROMPTS, settings)
    assert [t.text for t in a] == [t.text for t in b]
    for ta, tb in zip(a, b):
        for sa, sb in zip(ta.sketches, tb.sketches):
            np.testing.assert_allclose(sa.latents, sb.latents, atol=1e-5)
    save_pretrained(sketchy_model, tmp_path / "sequential")  # a sequential checkpoint stays sequential
    assert not load_pretrained(tmp_path / "sequential").parallel


def test_decoding_settings_are_checked(tiny_copy):
    with pytest.raises(ValueError, match="sketch_decoding must be one of"):
        ModalMixedConfig(vlm_config=tiny_copy.config.vlm_config.to_dict(), sketch_decoding="diagonal")
    with pytest.raises(ValueError, match="0 unless sketch_decoding is parallel"):
        tiny_copy.set_sketch_decoding("sequential", 2)
    tiny_copy.set_sketch_decoding("parallel", 1)
    with pytest.raises(ValueError, match="at most that many previous drawings"):
        ids = torch.tensor([[tiny_copy.start_id] + [tiny_copy.latent_id] * 4 + [tiny_copy.end_id]])
        latents = torch.zeros(4, tiny_copy.config.hidden_size)
        tiny_copy(ids, labels=ids, latents=latents, refine_latents=[latents, latents])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    write_dataset(str(out), per_family=4, seed=0, families=["count", "connect", "sink"])
    return out


def test_parallel_sft_then_grpo(tmp_path, data_dir):
    """SFT turns a sequential base parallel (R = 1; self-feeding and the drawing probe on): the diffusion loss
    falls, the slot queries train, the checkpoint says parallel; GRPO then runs its rollouts through the parallel
    engine and keeps the decoding."""
    base = save_pretrained(build_preset("tiny", seed=0, image_size=112, latent_budget=64), tmp_path / "base")
    common = dict(init=str(base), data=str(data_dir), batch_size=2, lr=3e-3, warmup_steps=2, log_every=1,
                  tracker="none", max_length=1024)  # fmt: skip
    sft = TrainConfig(stage="sft", output_dir=str(tmp_path / "sft"), max_steps=10, save_every=10,
                      sketch_decoding="parallel", sketch_refine_passes=1, self_feed_fraction=0.5, draw_weight=1.0,
                      **common)  # fmt: skip
    sft.check()
    start = build_model(sft)
    final = run(sft)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    latent = [r["latent_loss"] for r in rows if r["latent_loss"] > 0]  # 0: a batch of count puzzles (no sketch)
    assert len(latent) >= 5 and sum(latent[-2:]) < sum(latent[:2])
    model = load_pretrained(final / "model")
    assert model.parallel and model.refine_passes == 1
    assert (model.slot_queries.queries - start.slot_queries.queries).abs().max() > 1e-4
    grpo = TrainConfig(
        stage="grpo",
        output_dir=str(tmp_path / "grpo"),
        max_steps=2,
        save_every=2,
        grpo_prompts=2,
        grpo_group_size=2,
        grpo_max_new_tokens=150,
        **{**common, "init": str(final / "model")},
    )
    grpo.check()
    after = load_pretrained(run(grpo) / "model")
    assert after.parallel and after.refine_passes == 1
    torch.testing.assert_close(after.slot_queries.queries, model.slot_queries.queries)  # drawing stays as trained
