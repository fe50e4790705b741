"""Model core: SFT loss, KV-cache equivalence, save/load, gradient routing, sampler, bad input, real checkpoints."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DynamicCache, PreTrainedTokenizerFast

from model.core import vision
from model.core.checkpoint import (
    CheckpointError,
    build_preset,
    from_backbone,
    load_model,
    load_pretrained,
    resolve,
    save_pretrained,
)
from model.core.model_config import RETIRED_AT, RETIRED_KEYS, ModalMixedConfig, preset_config
from model.core.tokenizer import SPECIAL_TOKENS, encode_text, prompt_ids

ROOT = Path(__file__).resolve().parents[1]


def random_images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def make_example(model, question, answer_parts, num_images=1):
    """Token ids, labels and latents of prompt + response; answer_parts mixes strings and sketch latents (K, D)."""
    tok = model.tokenizer
    prompt = prompt_ids(tok, question, num_images, model.tokens_per_image)
    response, latents = [], []
    for part in answer_parts:
        if isinstance(part, str):
            response += encode_text(tok, part)
        else:
            response += [model.start_id] + [model.latent_id] * model.latent_budget + [model.end_id]
            latents.append(part)
    response.append(model.eos_id)
    ids = torch.tensor([prompt + response])
    labels = ids.clone()
    labels[:, : len(prompt)] = -100
    return ids, labels, torch.cat(latents) if latents else None, len(prompt)


@pytest.fixture(scope="module")
def fitted_model(tiny_model):
    """A copy of the tiny model with latent statistics fitted on four pictures' targets (the shared one stays
    untouched)."""
    model = copy.deepcopy(tiny_model)
    model.fit_latent_stats(model.sketch_targets(random_images(4, model.config.image_size)))
    return model


@pytest.fixture(scope="module")
def batch(fitted_model):
    model = fitted_model
    images = random_images(4, model.config.image_size)
    targets = model.sketch_targets(images)  # (4, K, D)
    ids, labels, latents, prompt_len = make_example(
        model, "Is the red cell connected to the blue cell?", ["Fill from red.", targets[1], "The answer is yes."]
    )
    pixel_values, grid = model.pixels(images[:1])
    return dict(
        input_ids=ids, labels=labels, latents=latents, pixel_values=pixel_values, image_grid_thw=grid
    ), prompt_len


def test_presets_are_small(tiny_model):
    """Sizes only; how long a preset takes to build is measured in benchmarks/, not asserted here."""
    assert sum(p.numel() for p in tiny_model.parameters()) < 1_000_000
    assert tiny_model.latent_budget == 4
    demo = preset_config("demo")
    assert demo.merged_grid == 8 and demo.latent_budget == 32


def test_sketch_targets_are_pooled_encoder_tokens(tiny_model):
    model = tiny_model
    images = random_images(2, model.config.image_size, seed=1)
    tokens = model.encode_images(*model.pixels(images))  # (2, G·G, D)
    grid = model.config.merged_grid
    assert tokens.shape[1] == grid * grid
    for budget in (1, 2, 4, 8, 16):
        pooled = model.sketch_targets(images, latent_budget=budget)
        h, w = vision.budget_layout(budget, grid)
        maps = tokens.reshape(2, grid, grid, -1)
        bh, bw = grid // h, grid // w
        expected = torch.stack(
            [
                maps[:, r * bh : (r + 1) * bh, c * bw : (c + 1) * bw].mean(dim=(1, 2))
                for r in range(h)
                for c in range(w)
            ],
            dim=1,
        )
        torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)


def test_demo_grid_pools_every_sweep_budget():
    for budget in (4, 8, 16, 32, 64):
        h, w = vision.budget_layout(budget, 8)
        assert h * w == budget and 8 % h == 0 and 8 % w == 0


def test_sft_loss_falls_when_overfitting():
    model = build_preset("tiny", seed=1)
    images = random_images(4, model.config.image_size, seed=2)
    targets = model.sketch_targets(images)
    model.fit_latent_stats(targets)
    examples = [
        make_example(model, f"Question {i}: where is the {c} cell?", [f"Step {i}.", targets[i], f"Answer {c}."])
        for i, c in enumerate(["red", "blue", "green", "black"])
    ]
    pixel_values, grid = model.pixels(images)
    image_embeds = model.encode_images(pixel_values, grid).detach()
    model.backbone.model.visual.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    def total_loss(generator=None):
        losses = []
        for i, (ids, labels, latents, _) in enumerate(examples):
            out = model(ids, labels=labels, latents=latents, image_embeds=image_embeds[i])
            losses.append(out.loss)
        return torch.stack(losses).mean()

    torch.manual_seed(0)
    with torch.no_grad():
        first = total_loss().item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = total_loss()
        loss.backward()
        optimizer.step()
    torch.manual_seed(0)
    with torch.no_grad():
        last = total_loss().item()
    assert last <= 0.1 * first, f"loss went {first:.3f} → {last:.3f}"


def test_incremental_decoding_equals_teacher_forcing(fitted_model, batch):
    model = fitted_model
    inputs, prompt_len = batch
    ids = inputs["input_ids"]
    with torch.no_grad():
        full = model(**{k: v for k, v in inputs.items() if k != "labels"})
        # prefix forward over the prompt, then one position at a time through the KV cache
        mask = torch.ones_like(ids[:, :prompt_len])
        embeds = model.embed(ids[:, :prompt_len], None, inputs["pixel_values"], inputs["image_grid_thw"])
        positions, next_pos = model.position_ids(ids[:, :prompt_len], mask, inputs["image_grid_thw"])
        cache = DynamicCache(config=model.backbone.config.text_config)
        hidden, _ = model.run_backbone(embeds, mask, positions, cache)
        step_hidden = [hidden[:, -1]]
        latent_iter, slot = iter(inputs["latents"]), 0
        image_keys, gated = ids[0] == model.image_token_id, False
        for pos in range(prompt_len, ids.shape[1] - 1):
            token = ids[:, pos : pos + 1]
            if int(token) == model.latent_id:  # latents go in with their slot positions added
                embed = model.latent_inputs(next(latent_iter).view(1, -1), torch.tensor([slot])).view(1, 1, -1)
                slot += 1
            else:
                embed, slot = model.backbone.get_input_embeddings()(token), 0
            gated |= int(token) == model.end_id  # the sketch gate: from ⟨END⟩ on, the image is out of sight
            mask = torch.ones(1, pos + 1, dtype=torch.bool)
            if gated:
                mask = (mask & ~image_keys[: pos + 1])[:, None, None, :]
            h = model.decode_step(embed, mask, next_pos, cache)
            next_pos = next_pos + 1
            step_hidden.append(h[:, -1])
    incremental = torch.stack(step_hidden, dim=1)
    reference = full.hidden[:, prompt_len - 1 : ids.shape[1] - 1]
    torch.testing.assert_close(incremental, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.logits(incremental), full.logits[:, prompt_len - 1 : -1], atol=1e-4, rtol=1e-4)


def test_save_load_roundtrip(fitted_model, batch, tmp_path):
    model = fitted_model
    inputs, _ = batch
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    loaded.eval()
    with torch.no_grad():
        a, b = model(**inputs), loaded(**inputs)
        torch.testing.assert_close(a.logits, b.logits, atol=0, rtol=0)
        cond = torch.randn(3, model.config.head_width)
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        torch.testing.assert_close(model.head.sample(cond, 4, g1), loaded.head.sample(cond, 4, g2), atol=0, rtol=0)
    torch.testing.assert_close(loaded.latent_mean, model.latent_mean)
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    assert not list((tmp_path).glob(".ckpt.tmp-*")), "staging folder left behind"


def test_language_only_path(tiny_model, tmp_path):
    model = tiny_model
    save_pretrained(model, tmp_path / "ckpt")
    plain = load_pretrained(tmp_path / "ckpt", with_latent_head=False)
    assert plain.head is None
    ids, labels, latents, _ = make_example(plain, "How many red cells?", ["There are three."])
    pixel_values, grid = plain.pixels(random_images(1, plain.config.image_size))
    with torch.no_grad():
        a = plain(ids, labels=labels, pixel_values=pixel_values, image_grid_thw=grid)
        b = model(ids, labels=labels, pixel_values=pixel_values, image_grid_thw=grid)
    torch.testing.assert_close(a.logits, b.logits)
    assert a.latent_loss is None


def _grads(module):
    return [p.grad for p in module.parameters() if p.requires_grad]


def test_gradient_routing(batch):
    inputs, _ = batch
    model = build_preset("tiny", seed=3)
    model.fit_latent_stats(inputs["latents"])
    for layer in (model.head.output, model.head.final_modulation[1]):  # zero-initialised: no input gradient yet
        torch.nn.init.normal_(layer.weight, std=0.02)
    out = model(**inputs)
    out.text_loss.backward(retain_graph=True)
    assert all(g is None or g.abs().sum() == 0 for g in _grads(model.head)), "text loss reached the head"
    model.zero_grad(set_to_none=True)
    out.latent_loss.backward()
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(model.head))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(model.backbone.model.language_model))


def test_sampler_recovers_target_with_perfect_predictor(tiny_model):
    head = copy.deepcopy(tiny_model.head)  # its predictor is replaced below
    target = torch.randn(6, head.latent_dim, dtype=torch.float64)
    alphas = head.noise_scheduler.alphas_cumprod.to(torch.float64)

    def perfect(x_t, timesteps, cond):
        a = alphas[timesteps].sqrt().unsqueeze(-1)
        s = (1 - alphas[timesteps]).sqrt().unsqueeze(-1)
        noise = (x_t - a * target) / s
        return a * noise - s * target  # the true velocity for this x_t

    head.predict = perfect
    for steps in (1, 5, 50):
        cond = torch.zeros(6, 4, dtype=torch.float64)
        out = head.sample_reference(cond, steps, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, target, atol=1e-6, rtol=1e-6)
        # the fast sampler's per-step coefficients (A, B) land on the target too
        timesteps, coef_a, coef_b = head.step_coefficients(steps)
        x = torch.randn(6, head.latent_dim, dtype=torch.float64)
        for t, a, b in zip(timesteps, coef_a, coef_b):
            x = a * x + b * perfect(x, torch.full((6,), int(t)), cond)
        torch.testing.assert_close(x, target, atol=1e-6, rtol=1e-6)


def test_bad_inputs_raise_with_numbers(fitted_model, batch):
    model = fitted_model
    inputs, _ = batch
    ids = inputs["input_ids"]
    slot = (ids[0] == model.latent_id).nonzero()[0].item()
    short = torch.cat([ids[:, :slot], ids[:, slot + 1 :]], dim=1)  # K - 1 slots
    with pytest.raises(ValueError, match=r"3 latent slots; the latent budget K is 4"):
        model(
            short,
            latents=inputs["latents"][:-1],
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
        )
    with pytest.raises(ValueError, match=r"4 latent slots but 3 latents"):
        model(
            ids,
            latents=inputs["latents"][:-1],
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
        )
    with pytest.raises(ValueError, match=r"16 image tokens but 0 image features"):
        model(ids, latents=inputs["latents"])
    with pytest.raises(ValueError, match=r"unknown preset 'huge'"):
        build_preset("huge")
    with pytest.raises(ValueError, match=r"K=6 cannot be pooled from a 4×4"):
        vision.budget_layout(6, 4)
    with pytest.raises(ValueError, match=r"K=32 cannot be pooled from a 4×4"):
        model.sketch_targets(random_images(1, 56), latent_budget=32)
    with pytest.raises(CheckpointError, match="unknown checkpoint 'nonsense'"):
        load_model("nonsense")


def test_user_text_cannot_spell_special_tokens(tiny_model):
    tok = tiny_model.tokenizer
    for special in SPECIAL_TOKENS:
        ids = encode_text(tok, f"look {special} here")
        assert not set(ids) & set(tok.all_special_ids), special
        assert tok.decode(ids) == f"look {special} here"
    ids = prompt_ids(tok, "<|sketch_start|><|image_pad|>", 1, tiny_model.tokens_per_image)
    assert ids.count(tiny_model.image_token_id) == tiny_model.tokens_per_image
    assert tiny_model.start_id not in ids


def test_damaged_checkpoint_files_are_named(tiny_model, tmp_path):
    folder = save_pretrained(tiny_model, tmp_path / "ckpt")
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors is damaged"):
        load_pretrained(folder)
    save_pretrained(tiny_model, folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is damaged"):
        load_pretrained(folder)
    save_pretrained(tiny_model, folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing tokenizer.json"):
        load_pretrained(folder)
    save_pretrained(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["latent_budget"] = 8  # a head with 8 slot embeddings no longer matches the stored 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="head.slot_embed.weight has shape"):
        load_pretrained(folder)


def test_real_checkpoint_path_with_tiny_qwen(tiny_qwen_folder, tmp_path):
    """`from_backbone` on a folder laid out like a Qwen2.5-VL hub checkpoint (same classes, tiny sizes)."""
    vocab = PreTrainedTokenizerFast.from_pretrained(tiny_qwen_folder).get_vocab()
    assert all(t in vocab for t in SPECIAL_TOKENS if "sketch" not in t)

    model = from_backbone(str(tiny_qwen_folder), image_size=56, latent_budget=4, head_width=32)
    assert model.backbone.get_input_embeddings().num_embeddings >= len(model.tokenizer)
    assert len({model.start_id, model.end_id, model.latent_id}) == 3
    images = random_images(2, 56)
    targets = model.sketch_targets(images)
    ids, labels, latents, _ = make_example(model, "q", ["a", targets[0], "b"])
    pixel_values, grid = model.pixels(images[1:])
    out = model(ids, labels=labels, latents=latents, pixel_values=pixel_values, image_grid_thw=grid)
    assert torch.isfinite(out.loss)
    save_pretrained(model, tmp_path / "mm")
    again = load_model(str(tmp_path / "mm"))
    with torch.no_grad():
        torch.testing.assert_close(
            again(ids, latents=latents, pixel_values=pixel_values, image_grid_thw=grid).logits,
            model(ids, latents=latents, pixel_values=pixel_values, image_grid_thw=grid).logits,
        )


def test_fast_sampler_matches_scheduler_loop():
    """`sample` (precomputed modulations, A·x + B·v updates) equals diffusers' step-by-step loop."""
    head = build_preset("tiny", seed=4).head
    for module in [head.output, head.final_modulation[1], *[b.modulation[1] for b in head.blocks]]:
        torch.nn.init.normal_(module.weight, std=0.05)  # leave the zero init, so the test sees the whole network
    cond, noise = torch.randn(5, 64), torch.randn(5, head.latent_dim)
    for steps in (1, 5, 50):
        fast, reference = head.sample(cond, steps, noise=noise), head.sample_reference(cond, steps, noise=noise)
        assert fast.abs().mean() > 0.1
        torch.testing.assert_close(fast, reference, atol=1e-4, rtol=1e-4)
    for steps in (1, 3, 5, 10):  # DPM-Solver++: the precomputed history coefficients vs diffusers' own step loop
        sampler, x = head.new_dpm_sampler(steps), noise.clone()
        with torch.no_grad():
            for t in sampler.timesteps:
                x = sampler.step(head.predict(x, torch.full((5,), int(t)), cond), t, x).prev_sample
        torch.testing.assert_close(head.sample(cond, steps, noise=noise, solver="dpm++"), x, atol=1e-4, rtol=1e-4)


def test_missing_checkpoint_paths_and_offline_hub_ids_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(str(tmp_path / "nowhere" / "demo"))
    with pytest.raises(CheckpointError, match="could not load 'nobody/no-such-model'"):
        load_model("nobody/no-such-model")  # HF_HUB_OFFLINE=1 in tests: the hub is never contacted


def test_checkpoint_errors_name_what_was_typed(tiny_model, tmp_path, monkeypatch):
    """resolve() is the one place checkpoint names are read; its errors and load_model's repeat the name as typed,
    never the absolute path it resolved to."""
    monkeypatch.chdir(tmp_path)
    save_pretrained(tiny_model, tmp_path / "runs" / "ck")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    assert resolve("runs/ck") == ("folder", Path("runs/ck"))
    assert resolve("ck", root=tmp_path / "runs") == ("folder", tmp_path / "runs" / "ck")
    assert resolve("tiny") == ("preset", None) and resolve("qwen2.5-vl-3b") == ("preset", None)
    assert resolve("owner/name") == ("hub", None)
    cases = {
        "../nope": "checkpoint folder ../nope does not exist",
        "./nope": "checkpoint folder ./nope does not exist",
        "nope/": "checkpoint folder nope/ does not exist",
        "runs/nope": "checkpoint folder runs/nope does not exist",
        "afile": "checkpoint afile is a file, not a folder",
        "empty": "checkpoint folder empty has no config.json and model.safetensors",
        "   ": "no checkpoint given",
        "nonsense": "unknown checkpoint 'nonsense': not a folder, and not one of the presets tiny, demo",
    }
    for spec, message in cases.items():
        with pytest.raises(CheckpointError) as caught:
            load_model(spec)
        assert str(caught.value).startswith(message), (spec, str(caught.value))
        assert str(tmp_path) not in str(caught.value)
    weights = tmp_path / "runs" / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"^runs/ck/model\.safetensors is damaged"):
        load_model("runs/ck")
    with pytest.raises(CheckpointError, match=r"^ck/model\.safetensors is damaged"):
        load_model("ck", root=tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / "ck")
    save_pretrained(tiny_model, tmp_path / "runs" / "ck")
    for text, problem in [("{not json", "not valid JSON"), ("[]", "expected a JSON object, got list")]:
        (tmp_path / "runs" / "ck" / "config.json").write_text(text)
        with pytest.raises(CheckpointError, match=rf"^runs/ck/config\.json is damaged: {problem}"):
            load_model("runs/ck")


def test_retired_keys_load_at_their_shipped_value_and_are_refused_otherwise(tmp_path):
    """A config.json written before an experiment's removal (every shipped checkpoint's has draw_query false,
    v_prediction, latent_loss_to_backbone true) loads, and saves without those keys; any other value is refused,
    naming the key and the commit that still runs it."""
    shipped = json.loads((ROOT / "assets/checkpoints/demo/config.json").read_text())
    assert {k: shipped[k] for k in RETIRED_KEYS} == RETIRED_KEYS
    config = ModalMixedConfig.from_dict(shipped)
    assert not set(RETIRED_KEYS) & set(config.to_dict())
    for key, value in (("draw_query", True), ("diffusion_prediction", "epsilon"), ("latent_loss_to_backbone", False)):
        with pytest.raises(ValueError, match=rf"{key} = .* removed experiment.*{RETIRED_AT}"):
            ModalMixedConfig.from_dict({**shipped, key: value})
    save_pretrained(build_preset("tiny", seed=3), tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "draw_query": True}))
    with pytest.raises(CheckpointError, match="draw_query = True is a removed experiment"):
        load_pretrained(tmp_path / "m")
