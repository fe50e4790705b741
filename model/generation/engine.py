"""The interleaved generation engine: KV-cached decoding that switches between text tokens and latent sketches.

    engine = Engine(model)
    traces = engine.generate([Prompt("...", images=[img])], GenerationSettings(mode="auto", seed=0))
    for event in engine.stream(prompts, settings): ...   # TraceEvents as they happen

The shape follows nanochat's engine: every row of the batch carries its own small state (`RowState`): text or latent
mode, how many latent slots of the current sketch are done, a queue of forced tokens, its own random generator.
One loop step feeds one position per row through the KV cache; rows in text mode sample a token from the logits,
rows inside a sketch draw a latent from the latent head (conditioned on the hidden state one position before the
slot, exactly as in training), and a row that has written K latents is forced to ⟨END⟩. The prompt is encoded once
(prefill); nothing is recomputed after that. With the model's sketch gate, a row's queries stop attending the
problem image tokens from its first ⟨END⟩ on, as in training. When the model has a sketch codebook
(model/core/sketch_codebook.py), each drawn latent is snapped to its slot's nearest centroid before it is fed back,
unless `GenerationSettings.snap` is False. Modes: model/generation/modes.py.

What it does not do: it only generates. It does not check user input (questions and images are checked once at
the edges: model/generation/inputs.py, called by the CLI and the app), does not grade answers (a Trace carries the
answer it extracted, not whether it is right) and writes nothing (callers log Traces with
model/generation/events.py `log_traces`). Images come in as PIL images.

Reproducibility: each row's sampling (tokens and diffusion noise) uses its own `torch.Generator` seeded from the
row's seed, so a row gives the same trace alone or in a batch. A sketch is only started when K + 2 positions remain
under `max_new_tokens`, so every sketch is closed by ⟨END⟩ after exactly K latents.
"""

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from model.core.tokenizer import encode_text, prompt_ids
from model.generation.answers import extract_answer
from model.generation.modes import MODE_SPECS, check_mode
from model.generation.trace import SketchSegment, TextSegment, Trace, TraceEvent


@dataclass
class GenerationSettings:
    mode: str = "auto"  # one of model.generation.modes.MODE_SPECS
    max_new_tokens: int = 256  # response positions, latent slots included
    max_sketches: int = 4  # ⟨START⟩ is banned once a row has this many sketches
    diffusion_steps: int | None = None  # T; None = the checkpoint's default
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    snap: bool | None = (
        None  # drawn latents snap to the model's codebook (model/core/sketch_codebook.py); None: if it has one
    )
    # parallel decoding: refinement passes at inference, at most the R the model was trained with (each of its
    # passes was trained to draw the true sketch); None: the checkpoint's R
    refine_passes: int | None = None

    def check(self) -> None:
        """ValueError naming the first setting out of range (the edges call this on what users typed)."""
        check_mode(self.mode)
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_sketches < 0:
            raise ValueError(f"max_sketches must be >= 0, got {self.max_sketches}")
        if self.diffusion_steps is not None and not 1 <= self.diffusion_steps <= 1000:
            raise ValueError(f"diffusion_steps must be between 1 and 1000, got {self.diffusion_steps}")
        if not 0 <= self.temperature <= 100:  # NaN fails both comparisons
            raise ValueError(f"temperature must be between 0 and 100, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be between 0 and 2**63 - 1, got {self.seed}")
        if self.refine_passes is not None and self.refine_passes < 0:
            raise ValueError(f"refine_passes must be >= 0, got {self.refine_passes}")


@dataclass
class Prompt:
    question: str
    images: list = field(default_factory=list)  # PIL images
    oracle_latents: list[torch.Tensor] | None = None  # per sketch (K, D): inserted in oracle / shuffled-latents modes
    seed: int | None = None  # overrides GenerationSettings.seed for this row (e.g. GRPO rollouts)
    response_prefix: str = ""  # text the answer is forced to begin with (else the mode's, e.g. direct's)


@dataclass
class RowState:
    generator: torch.Generator
    question: str
    seed: int
    started: float  # perf_counter at the start of the call
    mode: str = "auto"  # the mode this row really runs (see Engine.effective_mode)
    prefill_s: float = 0.0
    in_sketch: bool = False
    slots_done: int = 0
    forced: deque = field(default_factory=deque)  # tokens the row must write next (⟨END⟩ after K latents)
    finished: bool = False
    truncated: bool = False
    positions: int = 0  # response positions written
    text_ids: list[int] = field(default_factory=list)  # the current text span's tokens
    text_start: int = 0  # response position where the current span began
    emitted: str = ""  # text of the current span already streamed
    segments: list = field(default_factory=list)
    sketch: SketchSegment | None = None
    latents: list = field(default_factory=list)
    conditions: list = field(default_factory=list)
    sketch_started: float = 0.0
    sketch_seconds: float = 0.0
    text_chars: int = 0  # characters of finished text spans


class Engine:
    """Decodes batches of prompts with `model` into Traces."""

    def __init__(self, model):
        self.model = model
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
        model, start_time = self.model, time.perf_counter()
        mode = self.effective_mode(check_mode(settings.mode))
        steps = settings.diffusion_steps or model.config.diffusion_steps
        snap = self.snapping(settings)
        K = model.latent_budget
        passes = self.refine_passes(settings)

        # 1. prefill: left-padded prompts, images through the encoder, one forward that fills the KV cache
        ids = [prompt_ids(model.tokenizer, p.question, len(p.images), model.tokens_per_image) for p in prompts]
        length = max(len(x) for x in ids)
        pad = model.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (length - len(x)) + x for x in ids], device=model.device)
        mask = torch.tensor([[0] * (length - len(x)) + [1] * len(x) for x in ids], device=model.device)
        images = [img for p in prompts for img in p.images]
        pixel_values, grid = model.pixels(images) if images else (None, None)
        embeds = model.embed(input_ids, pixel_values=pixel_values, image_grid_thw=grid)
        positions, next_pos = model.position_ids(input_ids, mask, grid)
        cache = DynamicCache(config=model.backbone.config.text_config)
        hidden, _ = model.run_backbone(embeds, mask, positions, cache)
        hidden = hidden[:, -1]  # (B, D)
        prefill_s = time.perf_counter() - start_time

        rows = []
        for p in prompts:
            seed = settings.seed if p.seed is None else p.seed
            generator = torch.Generator(device=model.device).manual_seed(seed)
            rows.append(RowState(generator, p.question, seed, start_time, mode, prefill_s))
            prefix = p.response_prefix or MODE_SPECS[mode].response_prefix
            if prefix:
                rows[-1].forced.extend(encode_text(model.tokenizer, prefix))
        embed_tokens = model.backbone.get_input_embeddings()
        # sketch gate: once a row has fed ⟨END⟩, its queries may no longer attend the problem image tokens
        image_keys = input_ids == model.image_token_id  # (B, cached) grows by one column per step
        gated = torch.zeros(len(rows), dtype=torch.bool, device=model.device)
        while not all(r.finished for r in rows):
            # 2. choose each row's next input: a sampled token, a forced token, or a latent
            token_ids = torch.full((len(rows),), pad, dtype=torch.long, device=model.device)
            latent_rows = [b for b, r in enumerate(rows) if not r.finished and r.in_sketch and r.slots_done < K]
            text_rows = [b for b, r in enumerate(rows) if not r.finished and b not in latent_rows]
            if text_rows:
                logits = model.logits(hidden[text_rows]).float()
                for j, b in enumerate(text_rows):
                    row = rows[b]
                    if row.forced:
                        token_ids[b] = row.forced.popleft()
                        continue
                    token_ids[b] = self._sample(logits[j], row, settings, mode)
            latents = None
            if latent_rows:
                latents = self._draw_latents(hidden[latent_rows], latent_rows, rows, prompts, mode, steps, snap)
                slots = torch.tensor([rows[b].slots_done for b in latent_rows], device=model.device)
                latents = model.latent_inputs(latents, slots)
            step_embeds = embed_tokens(token_ids).unsqueeze(1)  # (B, 1, D)
            if latents is not None:
                step_embeds[latent_rows, 0] = latents.to(step_embeds.dtype)
            if model.config.sketch_gate:
                gated |= token_ids == model.end_id

            # 3. book-keeping and stream events, then feed the step through the cache
            live = torch.tensor([0 if r.finished else 1 for r in rows], device=model.device)
            for b in text_rows:
                yield from self._after_token(b, rows[b], int(token_ids[b]), settings, K)
            for b in latent_rows:
                row = rows[b]
                row.slots_done += 1
                row.positions += 1
                if row.slots_done == K:
                    row.forced.append(model.end_id)
            for b, row in enumerate(rows):
                if not row.finished and row.positions >= settings.max_new_tokens and not row.in_sketch:
                    yield from self._finish(b, row, settings, truncated=True)
            if all(r.finished for r in rows):
                break
            mask = torch.cat([mask, live.unsqueeze(1)], dim=1)
            image_keys = torch.cat([image_keys, torch.zeros_like(image_keys[:, :1])], dim=1)
            starters = [b for b in text_rows if model.parallel and int(token_ids[b]) == model.start_id]
            heads = [b for b in starters if self._draws(prompts[b], rows[b], mode)]
            if heads:  # parallel decoding: ⟨START⟩ goes in with the K slot queries of the rows that draw
                hidden, states = self._start_with_queries(step_embeds, heads, cache, mask, image_keys, gated, next_pos)
            else:
                step_mask = mask
                if bool(gated.any()):  # (B, 1, 1, cached + 1): padding and the gate, for this one query per row
                    step_mask = (mask.bool() & ~(image_keys & gated[:, None]))[:, None, None, :]
                hidden = model.decode_step(step_embeds, step_mask, next_pos, cache)[:, -1]
                states = None
            next_pos = next_pos + 1
            if starters:  # the rest of each parallel sketch now: refinements, draws, latents + ⟨END⟩ into the cache
                sketching = (starters, heads, states, prompts, mode, (steps, snap, passes))
                mask, image_keys, after = yield from self._parallel_sketch(
                    sketching, rows, cache, mask, image_keys, gated, next_pos
                )
                hidden[starters] = after
                next_pos[starters] += K + 1
                for b in starters:
                    yield from self._after_token(b, rows[b], model.end_id, settings, K)
                    if rows[b].positions >= settings.max_new_tokens:
                        yield from self._finish(b, rows[b], settings, truncated=True)

    # ---- pieces of one step -----------------------------------------------------------------------------------
    def _sample(self, logits: torch.Tensor, row: RowState, settings: GenerationSettings, mode: str) -> int:
        model = self.model
        logits = logits.clone()
        logits[self.banned_ids] = float("-inf")
        room = settings.max_new_tokens - row.positions
        num_sketches = sum(1 for s in row.segments if s.kind == "sketch")
        if not MODE_SPECS[mode].sketches or num_sketches >= settings.max_sketches or room < model.latent_budget + 2:
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

    def _draw_latents(self, hidden, latent_rows, rows, prompts, mode, steps, snap=False) -> torch.Tensor:
        """One latent per row inside a sketch: (n, D) in the backbone's embedding space. With `snap`, each latent
        the head draws is replaced by the nearest centroid of its slot before it is fed back."""
        model = self.model
        slot = torch.tensor([rows[b].slots_done for b in latent_rows], device=hidden.device)
        cond = model.head.condition(hidden, slot) if model.head is not None else None
        noise = torch.stack(
            [
                torch.randn(model.config.hidden_size, generator=rows[b].generator, device=hidden.device)
                for b in latent_rows
            ]
        )

        def given_latents(b):
            return self._given_latents(prompts[b], rows[b], mode)

        # the head runs only for rows that draw their own latent (every row is independent of the others)
        drawing = [j for j, b in enumerate(latent_rows) if self._draws(prompts[b], rows[b], mode)]
        drawn, spec = {}, MODE_SPECS[mode]
        if drawing:
            solver, pick = model.config.diffusion_solver, torch.tensor(drawing, device=hidden.device)
            start = noise[pick].to(cond.dtype) * model.config.sketch_temperature  # noise-latents keeps scale 1
            sampled = model.destandardize(model.head.sample(cond[pick], steps, noise=start, solver=solver))
            if snap:
                sampled = model.sketch_codebook.snap(sampled, slot[pick])
            drawn = dict(zip(drawing, sampled))
        out = []
        for j, b in enumerate(latent_rows):
            row, given = rows[b], given_latents(b)
            if spec.replace is not None:  # the mode's own latents (noise, zeros, …) instead of the head's
                latent, row.sketch.source = spec.replace(model, noise[j : j + 1])[0], spec.source
            elif given is not None:
                latent, row.sketch.source = given[row.slots_done].to(hidden.device, hidden.dtype), spec.source
            else:
                latent = drawn[j]
                row.sketch.snapped = snap
            row.latents.append(latent.float().cpu())
            if cond is not None:
                row.conditions.append(cond[j].float().cpu())
            out.append(latent)
        return torch.stack(out)

    def _draws(self, prompt, row, mode) -> bool:
        """Whether the latent head draws the sketch this row is in (auto; oracle or shuffled without given ones)."""
        spec = MODE_SPECS[mode]
        return spec.sketches and spec.replace is None and self._given_latents(prompt, row, mode) is None

    def _start_with_queries(self, step_embeds, heads, cache, mask, image_keys, gated, next_pos):
        """One step widened by K columns: every row's input as usual (⟨START⟩ for the rows opening a sketch) and,
        for the `heads` rows, the K slot queries of the first pass after it, attending the cache, their ⟨START⟩ and
        each other; the query columns are cropped off the cache again. → (hidden (B, D), states (H, K, D))."""
        model, K, batch = self.model, self.model.latent_budget, len(gated)
        device = step_embeds.device
        slot = torch.arange(K, device=device)
        queries = torch.zeros(batch, K, step_embeds.shape[-1], device=device, dtype=step_embeds.dtype)
        queries[heads] = model.query_inputs(slot).to(step_embeds.dtype).expand(len(heads), -1, -1)
        sees = mask.bool() & ~(image_keys & gated[:, None])  # (B, cached): what this step's inputs may attend
        step_mask = torch.zeros(batch, 1, 1 + K, mask.shape[1] + K, dtype=torch.bool, device=device)
        step_mask[:, 0, :, : mask.shape[1]] = sees[:, None]
        drawing = torch.zeros(batch, dtype=torch.bool, device=device)
        drawing[heads] = True
        block = torch.where(drawing[:, None, None], torch.ones(K, K, dtype=torch.bool, device=device),
                            torch.eye(K, dtype=torch.bool, device=device))  # fmt: skip
        step_mask[:, 0, 1:, mask.shape[1] :] = block
        positions = (next_pos[:, None] + torch.arange(1 + K, device=device)).unsqueeze(0).expand(3, -1, -1)
        out, _ = model.run_backbone(torch.cat([step_embeds, queries], dim=1), step_mask, positions, cache)
        cache.crop(-K)  # the queries are a side branch: nothing after the sketch attends them
        return out[:, 0], out[heads, 1:]

    def _parallel_sketch(self, sketching, rows, cache, mask, image_keys, gated, next_pos):
        """The rest of the sketches the `starters` rows just opened (⟨START⟩ and the first query pass are in):
        refinement passes (each against the cache, then cropped off again), one batched head draw per pass, and
        one pass that writes the K latents and ⟨END⟩ into the cache at their positions. Rows that are not starting
        a sketch get K + 1 masked columns. Yields one `sketch_pass` event per pass and row; returns the grown
        (mask, image_keys) and the starters' hidden states after ⟨END⟩ (S, D). `sketching`: (starters, heads,
        first-pass states (H, K, D), prompts, mode, (diffusion steps, snap to the codebook, refinement passes))."""
        starters, heads, states, prompts, mode, (steps, snap, passes) = sketching
        model, K, batch, dim = self.model, self.model.latent_budget, len(rows), self.model.config.hidden_size
        device = model.device
        slot = torch.arange(K, device=device)
        starting = torch.zeros(batch, dtype=torch.bool, device=device)
        starting[starters] = True
        sees = (mask.bool() & ~(image_keys & gated[:, None]))[:, None, None, :]  # (B, 1, 1, cached)
        own = torch.eye(K + 1, dtype=torch.bool, device=device)  # rows not sketching: no empty softmax row
        positions = (next_pos[:, None] + torch.arange(K + 1, device=device)).unsqueeze(0).expand(3, -1, -1)
        drawn, conditions = {}, {}
        for index in range(passes + 1 if heads else 0):
            if index:  # a refinement pass: the queries again, each with the previous drawing of its slot
                inputs = torch.zeros(batch, K, dim, device=device, dtype=model.dtype)
                prior = torch.stack([drawn[b] for b in heads]).flatten(0, 1)
                inputs[heads] = model.query_inputs(slot.repeat(len(heads)), prior).view(len(heads), K, -1)
                block = torch.where(starting[:, None, None], torch.ones_like(own[:K, :K]), own[:K, :K])
                query_mask = torch.cat([sees.expand(-1, 1, K, -1), block[:, None]], dim=-1)
                out, _ = model.run_backbone(inputs, query_mask, positions[:, :, :K], cache)
                cache.crop(-K)
                states = out[heads]
            cond = model.head.condition(states.flatten(0, 1), slot.repeat(len(heads)))
            noise = torch.stack([torch.randn(K, dim, generator=rows[b].generator, device=device) for b in heads])
            start = noise.flatten(0, 1).to(cond.dtype) * model.config.sketch_temperature
            sampled = model.head.sample(cond, steps, noise=start, solver=model.config.diffusion_solver)
            sampled = model.destandardize(sampled).view(len(heads), K, -1)
            for j, b in enumerate(heads):
                drawn[b], conditions[b] = sampled[j], cond.view(len(heads), K, -1)[j]
                yield TraceEvent(row=b, kind="sketch_pass", sketch=rows[b].sketch, pass_index=index)
        latents = torch.zeros(batch, K, dim, device=device)
        for b in starters:
            latents[b] = self._sketch_latents(b, rows[b], prompts[b], mode, drawn.get(b), snap, passes).float()
            if b in conditions:
                rows[b].conditions.extend(conditions[b].float().cpu())
            rows[b].slots_done, rows[b].positions = K, rows[b].positions + K
        # the latents and ⟨END⟩: causal among themselves; ⟨END⟩ is where the sketch gate closes (as in gate_mask)
        end = model.backbone.get_input_embeddings()(torch.full((batch, 1), model.end_id, device=device))
        inputs = torch.cat([model.latent_inputs(latents.flatten(0, 1), slot.repeat(batch)).view(batch, K, -1),
                            end.to(latents.dtype)], dim=1)  # fmt: skip
        old = sees.expand(-1, 1, K + 1, -1).clone()
        if model.config.sketch_gate:
            old[:, 0, K] &= ~image_keys
            gated[starters] = True
        block = torch.where(starting[:, None, None], torch.ones_like(own).tril(), own)[:, None]
        out, _ = model.run_backbone(inputs.to(model.dtype), torch.cat([old, block], dim=-1), positions, cache)
        mask = torch.cat([mask, starting.long()[:, None].expand(-1, K + 1)], dim=1)
        image_keys = torch.cat([image_keys, torch.zeros_like(image_keys[:, :1]).expand(-1, K + 1)], dim=1)
        return mask, image_keys, out[starters, K]

    def _sketch_latents(self, b, row, prompt, mode, drawn, snap, passes) -> torch.Tensor:
        """The K latents a parallel sketch gets in `mode` (the head's last drawing in auto), recorded on the row."""
        model, K, dim = self.model, self.model.latent_budget, self.model.config.hidden_size
        given, spec = self._given_latents(prompt, row, mode), MODE_SPECS[mode]
        row.sketch.decoding, row.sketch.refine_passes = "parallel", passes
        if spec.replace is not None:  # the mode's own latents (noise, zeros, …) instead of the head's
            noise = torch.randn(K, dim, generator=row.generator, device=model.device)
            chosen, row.sketch.source = spec.replace(model, noise), spec.source
        elif given is not None:
            chosen, row.sketch.source = given.to(model.device, torch.float32), spec.source
        else:
            slot = torch.arange(K, device=model.device)
            chosen = model.sketch_codebook.snap(drawn, slot) if snap else drawn
            row.sketch.snapped = snap
        row.latents.extend(chosen.float().cpu())
        return chosen

    def _given_latents(self, prompt, row, mode):
        """The sketch this row is inside, when the prompt brought it (oracle / shuffled), else None."""
        given, number = prompt.oracle_latents, len(row.latents) // self.model.latent_budget
        inserts = MODE_SPECS[mode].inserts
        return given[number] if inserts and given is not None and number < len(given) else None

    def _after_token(self, b: int, row: RowState, token: int, settings, K: int) -> Iterator[TraceEvent]:
        model, tok = self.model, self.model.tokenizer
        position = row.positions
        row.positions += 1
        if token == model.eos_id:
            yield from self._finish(b, row, settings, truncated=False)
            return
        if token == model.start_id:
            yield from self._close_text(b, row)
            row.in_sketch, row.slots_done = True, 0
            row.sketch_started = time.perf_counter()
            index = sum(1 for s in row.segments if s.kind == "sketch")
            row.sketch = SketchSegment(
                index=index,
                start_position=position,
                end_position=position + K + 1,
                char_position=row.text_chars,
                num_latents=K,
                source="generated",
                seconds=0.0,
            )
            yield TraceEvent(row=b, kind="sketch_started", sketch=row.sketch)
            return
        if token == model.end_id:
            sketch = row.sketch
            sketch.latents = torch.stack(row.latents[-K:]).numpy()
            sketch.conditions = torch.stack(row.conditions[-K:]).numpy() if row.conditions else None
            sketch.seconds = time.perf_counter() - row.sketch_started
            row.sketch_seconds += sketch.seconds
            row.segments.append(sketch)
            row.in_sketch, row.sketch = False, None
            row.text_start = row.positions
            yield TraceEvent(row=b, kind="sketch_done", sketch=sketch)
            return
        if not row.text_ids:
            row.text_start = position
        row.text_ids.append(token)
        text = tok.decode(row.text_ids)
        if not text.endswith("\ufffd") and len(text) > len(row.emitted):  # wait for whole UTF-8 characters
            delta, row.emitted = text[len(row.emitted) :], text
            yield TraceEvent(row=b, kind="text", text=delta)

    def _close_text(self, b: int, row: RowState) -> Iterator[TraceEvent]:
        if not row.text_ids:
            return
        text = self.model.tokenizer.decode(row.text_ids)
        if len(text) > len(row.emitted):
            yield TraceEvent(row=b, kind="text", text=text[len(row.emitted) :])
        row.segments.append(TextSegment(text, list(row.text_ids), row.text_start, row.text_chars))
        row.text_chars += len(text)
        row.text_ids, row.emitted = [], ""

    def _finish(self, b: int, row: RowState, settings, truncated: bool) -> Iterator[TraceEvent]:
        yield from self._close_text(b, row)
        row.finished, row.truncated = True, truncated
        text = "".join(s.text for s in row.segments if s.kind == "text")
        total = time.perf_counter() - row.started
        trace = Trace(
            question=row.question,
            mode=row.mode,
            segments=row.segments,
            text=text,
            answer=extract_answer(text),
            truncated=truncated,
            num_positions=row.positions,
            seed=row.seed,
            timings={
                "prefill_s": row.prefill_s,
                "decode_s": total - row.prefill_s,
                "sketch_s": row.sketch_seconds,
                "total_s": total,
            },
        )
        yield TraceEvent(row=b, kind="finished", trace=trace)
