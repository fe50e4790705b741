"""The interleaved generation engine: KV-cached decoding that switches between text tokens and latent sketches.

    engine = Engine(model)
    traces = engine.generate([Prompt("...", images=[img])], GenerationSettings(mode="auto", seed=0))
    for event in engine.stream(prompts, settings): ...   # TraceEvents as they happen

The shape follows nanochat's engine: every row of the batch carries its own small state (`RowState`,
model/generation/rows.py): its random generator, a queue of forced tokens, the positions it has written, its
segments, and the text span or sketch it is in. The prompt is encoded once (prefill); then one loop step feeds one
position per row through the KV cache: a row in text samples a token from the logits (or writes a forced one); a
sketch is drawn by one of the two decodings of model/generation/sketching.py — sequential, a row inside a sketch
gets one latent from the head (conditioned on the hidden state one position before the slot, exactly as in
training) and is forced to ⟨END⟩ after K; parallel, the step that writes ⟨START⟩ draws and writes the whole sketch.
With the model's sketch gate, a row's queries stop attending the problem image tokens from its first ⟨END⟩ on, as in
training. When the model has a sketch codebook (model/core/sketch_codebook.py), each drawn latent is snapped to its
slot's nearest centroid before it is fed back, unless `GenerationSettings.snap` is False. Modes:
model/generation/modes.py.

What it does not do: it only generates. It does not check user input (questions and images are checked once at
the edges: model/generation/inputs.py, called by the CLI and the app), does not grade answers (a Trace carries the
answer it extracted, not whether it is right) and writes nothing (callers log Traces with
model/generation/events.py `log_traces`). Images come in as PIL images.

Reproducibility: each row's sampling (tokens and diffusion noise) uses its own `torch.Generator` seeded from the
row's seed, so a row gives the same trace alone or in a batch. A sketch is only started when K + 2 positions remain
under `max_new_tokens`, so every sketch is closed by ⟨END⟩ after exactly K latents.
"""

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from model.core.image_memo import ImageMemo, image_features
from model.core.tokenizer import encode_text, prompt_ids
from model.generation.modes import MODE_SPECS
from model.generation.rows import RowState, finish, write_token
from model.generation.settings import GenerationSettings
from model.generation.sketching import Context, SketchPlan, draw_parallel, draw_sequential
from model.generation.trace import Trace, TraceEvent


@dataclass
class Prompt:
    question: str
    images: list = field(default_factory=list)  # PIL images
    oracle_latents: list[torch.Tensor] | None = None  # per sketch (K, D): inserted in oracle / shuffled-latents modes
    seed: int | None = None  # overrides GenerationSettings.seed for this row (e.g. GRPO rollouts)
    response_prefix: str = ""  # text the answer is forced to begin with (else the mode's, e.g. direct's)


class Engine:
    """Decodes batches of prompts with `model` into Traces."""

    def __init__(self, model, reuse_prefill: bool = False):
        self.model = model
        # reuse_prefill: the last batch's prefill kept, so the same prompts asked again (another mode) start from a
        # copy of its KV cache instead of running the language model over them again (model/evaluation/harness.py)
        self.reuse_prefill = reuse_prefill
        self._kept: tuple | None = None  # (the prompts' key, hidden, Context) of the last prefill
        tok = model.tokenizer
        # tokens a text step may never sample: latent placeholders, image markers, padding
        banned = {model.latent_id, model.image_token_id, tok.pad_token_id}
        for name in ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>"):
            banned.add(tok.convert_tokens_to_ids(name))
        self.banned_ids = sorted(i for i in banned if i is not None and i >= 0)

    def effective_mode(self, mode: str) -> str:
        """The mode a row really runs: a model without a latent head runs text-only for any sketching mode."""
        return mode if self.model.has_latent_head or MODE_SPECS[mode].language_only else "text-only"

    def snapping(self, settings: GenerationSettings) -> bool:
        """Whether drawn latents snap to the codebook; ValueError when asked to and the model has none."""
        has = self.model.sketch_codebook is not None
        if settings.snap and not has:
            raise ValueError("snap needs a sketch codebook, and this checkpoint has none (fit one with "
                             "`python -m model.codebook --checkpoint DIR --data DATA`)")  # fmt: skip
        return has if settings.snap is None else bool(settings.snap)

    def refine_passes(self, settings: GenerationSettings) -> int:
        """The refinement passes each parallel sketch gets; ValueError when more than the model was trained with."""
        trained = self.model.refine_passes
        if settings.refine_passes is None:
            return trained
        if settings.refine_passes > trained:
            raise ValueError(f"refine_passes {settings.refine_passes}: this checkpoint was trained with {trained}, so "
                             f"it can run 0…{trained}")  # fmt: skip
        return settings.refine_passes

    def generate(self, prompts: list[Prompt], settings: GenerationSettings | None = None) -> list[Trace]:
        traces = {}
        for event in self.stream(prompts, settings):
            if event.kind == "finished":
                traces[event.row] = event.trace
        return [traces[i] for i in range(len(prompts))]

    @torch.no_grad()
    def stream(self, prompts: list[Prompt], settings: GenerationSettings | None = None) -> Iterator[TraceEvent]:
        settings = settings or GenerationSettings()
        assert prompts, "no prompts"
        model, started = self.model, time.perf_counter()
        assert settings.mode in MODE_SPECS, f"unknown mode {settings.mode!r}: the edges check GenerationSettings"
        mode = self.effective_mode(settings.mode)
        steps = settings.diffusion_steps or model.config.diffusion_steps
        plan = SketchPlan(MODE_SPECS[mode], steps, self.snapping(settings), self.refine_passes(settings))
        K, tok = model.latent_budget, model.tokenizer
        hidden, context = self._prefill_or_reuse(prompts)  # 1. the prompts into the cache
        clock, gated = (started, time.perf_counter() - started), context.gated

        rows, traces = [], []  # each row's state, and the Trace it fills once finished
        for p in prompts:
            seed = settings.seed if p.seed is None else p.seed
            rows.append(RowState(torch.Generator(device=model.device).manual_seed(seed)))
            traces.append(Trace(p.question, mode, seed=seed))
            prefix = p.response_prefix or plan.mode.response_prefix
            if prefix:
                rows[-1].forced.extend(encode_text(tok, prefix))

        while not all(r.finished for r in rows):
            # 2. each row's next input: a forced token, a sampled one, or (sequential decoding) a sketch's next latent
            token_ids = torch.full((len(rows),), tok.pad_token_id, dtype=torch.long, device=model.device)
            inside = [b for b, r in enumerate(rows) if not r.finished and r.drawing is not None and r.slots_done < K]
            text_rows = [b for b, r in enumerate(rows) if not r.finished and b not in inside]
            if text_rows:
                logits = model.logits(hidden[text_rows]).float()
                for j, b in enumerate(text_rows):
                    forced = rows[b].forced
                    token_ids[b] = forced.popleft() if forced else self._sample(logits[j], rows[b], settings, plan)
            step_embeds = model.backbone.get_input_embeddings()(token_ids).unsqueeze(1)  # (B, 1, D)
            if inside:
                latents = draw_sequential(model, hidden[inside], inside, rows, prompts, plan)
                step_embeds[inside, 0] = latents.to(step_embeds.dtype)
            if model.config.sketch_gate:
                gated |= token_ids == model.end_id

            # 3. book-keeping and stream events
            live = torch.tensor([0 if r.finished else 1 for r in rows], device=model.device)
            for b in text_rows:
                if (yield from write_token(model, b, rows[b], int(token_ids[b]))):  # ⟨eos⟩
                    yield from finish(tok, b, rows[b], traces[b], False, clock)
            for b in inside:
                rows[b].positions += 1
                if rows[b].slots_done == K:
                    rows[b].forced.append(model.end_id)
            for b, row in enumerate(rows):
                if not row.finished and row.positions >= settings.max_new_tokens and row.drawing is None:
                    yield from finish(tok, b, row, traces[b], True, clock)
            if all(r.finished for r in rows):
                break

            # 4. the step through the cache; in parallel decoding a row that wrote ⟨START⟩ draws its whole sketch now
            context.grow(live.unsqueeze(1))
            starters = [b for b in text_rows if model.parallel and int(token_ids[b]) == model.start_id]
            if not starters:
                hidden = context.step(model, step_embeds)
                continue
            hidden = yield from draw_parallel(model, context, step_embeds, starters, rows, prompts, plan)
            for b in starters:
                yield from write_token(model, b, rows[b], model.end_id)
                if rows[b].positions >= settings.max_new_tokens:
                    yield from finish(tok, b, rows[b], traces[b], True, clock)

    def _prefill_or_reuse(self, prompts: list[Prompt]) -> tuple[torch.Tensor, Context]:
        """The prefill, or with `reuse_prefill` a copy of the last one when it was of the same prompts (questions and
        pictures; what decoding then writes into the copy leaves the kept one as it was)."""
        if not self.reuse_prefill:
            return self._prefill(prompts)
        key = [(p.question, tuple(ImageMemo.key(img) for img in p.images)) for p in prompts]
        if self._kept is None or self._kept[0] != key:
            hidden, context = self._prefill(prompts)
            self._kept = (key, hidden, copy.deepcopy(context))
            return hidden, context
        return self._kept[1].clone(), copy.deepcopy(self._kept[2])

    def _prefill(self, prompts: list[Prompt]) -> tuple[torch.Tensor, Context]:
        """Left-padded prompts, their images through the encoder, one forward that fills the KV cache. → (each row's
        last hidden state (B, D), the Context the decode steps continue)."""
        model, tok = self.model, self.model.tokenizer
        ids = [prompt_ids(tok, p.question, len(p.images), model.tokens_per_image) for p in prompts]
        length = max(len(x) for x in ids)
        input_ids = torch.tensor([[tok.pad_token_id] * (length - len(x)) + x for x in ids], device=model.device)
        mask = torch.tensor([[0] * (length - len(x)) + [1] * len(x) for x in ids], device=model.device)
        images = [img for p in prompts for img in p.images]
        tokens, grid = image_features(model, images) if images else (None, None)
        embeds = model.embed(input_ids, image_embeds=None if tokens is None else tokens.flatten(0, 1))
        positions, next_pos = model.position_ids(input_ids, mask, grid)
        cache = DynamicCache(config=model.backbone.config.text_config)
        hidden, _ = model.run_backbone(embeds, mask, positions, cache)
        gated = torch.zeros(len(prompts), dtype=torch.bool, device=model.device)  # no row has closed a sketch yet
        return hidden[:, -1], Context(cache, mask, input_ids == model.image_token_id, gated, next_pos)

    def _sample(self, logits: torch.Tensor, row: RowState, settings: GenerationSettings, plan: SketchPlan) -> int:
        """A row's next token from its logits (V,): banned tokens never, ⟨START⟩ only while the mode, the sketch
        budget and the room left allow a whole sketch, ⟨END⟩ only when forced; greedy at temperature 0."""
        model = self.model
        logits = logits.clone()
        logits[self.banned_ids] = float("-inf")
        room = settings.max_new_tokens - row.positions
        if not plan.mode.sketches or row.num_sketches >= settings.max_sketches or room < model.latent_budget + 2:
            logits[model.start_id] = float("-inf")
        logits[model.end_id] = float("-inf")  # ⟨END⟩ is only ever forced
        if settings.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / settings.temperature, dim=-1)
        if settings.top_p < 1:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(0) - sorted_probs < settings.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs, 1, generator=row.generator))
