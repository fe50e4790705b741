"""The modal-mixed model: Qwen2.5-VL (by composition, unmodified) + a diffusion latent head.

A sequence interleaves text tokens, image placeholders and sketches. A sketch is ⟨START⟩, K latent slots, ⟨END⟩; the
input embedding at each latent slot is a continuous vector in the backbone's input space (the K pooled vision tokens
of an imagined image) instead of a token embedding. At training time the slots hold the true targets (teacher
forcing); at inference the head draws each one from the hidden state one position before it.

Positions. Qwen2.5-VL gives image tokens 3-D rotary positions (time, row, column) and text 1-D ones (the same
number on all three axes), and only does so when told which tokens are image tokens (`mm_token_type_ids`). Latent
slots are treated as text: each advances the position by one on all three axes. `position_ids` computes this for a
whole sequence with the backbone's own `get_rope_index`; incremental decoding continues from `next_positions`
(max + 1 per row), which gives the same numbers, so training and decoding agree by construction.

Loss (paper eq. 4): CE over the answer's text tokens (⟨START⟩ and ⟨END⟩ included, latent slots excluded) +
λ · diffusion loss over latent slots; the diffusion loss trains the backbone too, through the head's condition.

Where this departs from the paper: the head's condition adds a learned slot-index embedding (the paper conditions on
h_k alone); targets are standardised per dimension with statistics stored in the checkpoint, so one noise schedule
fits every backbone's embedding scale.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import Qwen2_5_VLForConditionalGeneration

from model.core import sequence, vision
from model.core.diffusion_head import DiffusionHead
from model.core.image_memo import image_features
from model.core.loss_terms import LossTerms
from model.core.model_config import ModalMixedConfig, check_sketch_decoding
from model.core.regression_head import RegressionHead
from model.core.slot_queries import SlotQueries, add_query_blocks
from model.core.tokenizer import IMAGE_PAD, token_id


@dataclass
class ModalMixedOutput:
    logits: torch.Tensor  # (B, L, V)
    hidden: torch.Tensor  # (B, L, D) last layer, after the final norm
    loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    latent_loss: torch.Tensor | None = None
    answer_loss: torch.Tensor | None = None  # mean CE over the labels that carry the answer, when marked
    draw_loss: torch.Tensor | None = None  # CE of the drawing probe over the described sketch slots
    # (M, D) the state each latent slot is drawn from (sequential: the position before it; parallel: its query in
    # the last pass), when the forward computed them
    slot_states: torch.Tensor | None = None
    cache: object | None = None


class ModalMixedModel(nn.Module):
    def __init__(self, config: ModalMixedConfig, tokenizer, image_processor, backbone=None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.backbone = backbone if backbone is not None else Qwen2_5_VLForConditionalGeneration(config.vlm_config)
        self.backbone.model.rope_deltas = None  # never used: we always pass explicit positions
        dim = config.hidden_size
        self.head = self._new_head()
        # per-dimension statistics of the targets, set by fit_latent_stats before SFT
        self.register_buffer("latent_mean", torch.zeros(dim))
        self.register_buffer("latent_std", torch.ones(dim))
        grid = config.merged_grid
        # absolute cell positions (row + column), added to image tokens and to sketch slots (pooled like the targets)
        self.cell_rows = nn.Parameter(torch.randn(grid, dim) * 0.02) if config.cell_position_embedding else None
        self.cell_cols = nn.Parameter(torch.randn(grid, dim) * 0.02) if config.cell_position_embedding else None
        parallel = config.sketch_decoding == "parallel"
        self.slot_queries = SlotQueries(config.latent_budget, dim) if parallel else None
        colours = config.cell_colours or []
        self.draw_probe = nn.Linear(dim, len(colours)) if colours else None
        self.sketch_codebook = None  # SketchCodebook (sketch_codebook.py) drawn latents snap to; not a weight
        self.image_token_id = token_id(tokenizer, IMAGE_PAD)
        self.start_id = token_id(tokenizer, config.start_token)
        self.end_id = token_id(tokenizer, config.end_token)
        self.latent_id = token_id(tokenizer, config.latent_token)
        self.eos_id = tokenizer.eos_token_id

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.lm_head.weight.dtype

    @property
    def latent_budget(self) -> int:
        return self.config.latent_budget

    @property
    def has_latent_head(self) -> bool:
        return self.head is not None

    @property
    def tokens_per_image(self) -> int:
        return self.config.merged_grid**2

    @property
    def parallel(self) -> bool:
        """Whether sketches are drawn all at once from slot queries (model/core/slot_queries.py)."""
        return self.slot_queries is not None

    @property
    def refine_passes(self) -> int:
        return self.config.sketch_refine_passes

    def set_latent_budget(self, latent_budget: int) -> None:
        """Change K: checks that K pools from the image grid and gives the head fresh slot embeddings (the sweep
        trains every K from the same stage-0 base, whose head has never been trained)."""
        vision.budget_layout(latent_budget, self.config.merged_grid)  # raises when K does not tile the grid
        if latent_budget == self.config.latent_budget:
            return
        self.config.latent_budget = latent_budget
        self.sketch_codebook = None  # its centroids are per slot of the old K
        old = self.head.slot_embed
        self.head.slot_embed = nn.Embedding(latent_budget, old.embedding_dim).to(old.weight.device, old.weight.dtype)
        if self.slot_queries is not None:
            self.slot_queries = SlotQueries(latent_budget, self.config.hidden_size).to(self.device, self.dtype)

    def _new_head(self) -> nn.Module:
        config = self.config
        head_class = RegressionHead if config.head_type == "regression" else DiffusionHead
        dim = config.hidden_size
        return head_class(
            latent_dim=dim,
            cond_dim=dim,
            width=config.head_width,
            depth=config.head_depth,
            max_slots=config.latent_budget,
            num_train_timesteps=config.diffusion_train_steps,
            beta_schedule=config.diffusion_schedule,
            train_draws=config.diffusion_train_draws,
        )

    def replace_head(self, head_type: str) -> None:
        """Switch to a head of another type (the sweep's head ablation): a freshly initialised one; same type: kept."""
        if head_type == self.config.head_type:
            return
        self.config.head_type = head_type
        self.head = self._new_head().to(self.device)

    def set_sketch_decoding(self, decoding: str, refine_passes: int = 0) -> None:
        """Switch how sketches are drawn (the SFT that first trains parallel decoding starts from a sequential
        stage-0 base): parallel gets fresh slot queries unless it has them; sequential drops them."""
        check_sketch_decoding(decoding, refine_passes)
        self.config.sketch_decoding, self.config.sketch_refine_passes = decoding, refine_passes
        if decoding == "parallel" and self.slot_queries is None:
            self.slot_queries = SlotQueries(self.latent_budget, self.config.hidden_size).to(self.device, self.dtype)
        elif decoding == "sequential":
            self.slot_queries = None

    def query_inputs(self, slot_index: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """What a parallel sketch's query at `slot_index` (N,) is fed (N, D): its slot query and its slot's cell
        position; in a refinement pass also the previous drawing `previous` (N, D), read as a latent there."""
        table = self.cell_positions(self.latent_budget)
        read = None if previous is None else self.latent_inputs(previous, slot_index)
        out = self.slot_queries(slot_index, read)
        if table is not None and read is None:  # latent_inputs already added the position
            out = out + table.to(out.dtype)[slot_index]
        return out

    def enable_draw_probe(self, colours: list[str]) -> None:
        """Add the drawing probe (config.cell_colours) to a model trained without it; kept when it has one."""
        if self.draw_probe is not None:
            return
        if len(colours) < 2:
            raise ValueError(f"the drawing probe needs at least two colours, got {colours}")
        self.config.cell_colours = list(colours)
        self.draw_probe = nn.Linear(self.config.hidden_size, len(colours)).to(self.device, self.dtype)

    def remove_latent_head(self) -> None:
        """Language-only path: drop the head; the backbone then runs as a plain VLM (⟨START⟩ is never sampled)."""
        self.head = None
        self.sketch_codebook = None

    # ---- images -----------------------------------------------------------------------------------------------
    def pixels(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        pixel_values, grid_thw = vision.to_pixels(images, self.image_processor, self.config.image_size)
        return pixel_values.to(self.device, self.dtype), grid_thw.to(self.device)

    def encode_images(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """Vision encoder + merger. → (N, G·G, D) merged tokens in the LLM embedding space, raster order."""
        out = self.backbone.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
        return torch.stack(out.pooler_output)

    @torch.no_grad()
    def sketch_targets(self, images, latent_budget: int | None = None) -> torch.Tensor:
        """Self-reconstruction targets: images → frozen encoder → pooled to K. → (N, K, D), not standardised."""
        tokens, _ = image_features(self, images)
        return vision.pool_tokens(tokens, self.config.merged_grid, latent_budget or self.latent_budget)

    @torch.no_grad()
    def fit_latent_stats(self, latents: torch.Tensor) -> None:
        """Set the per-dimension standardisation from a sample of targets (M, D)."""
        flat = latents.reshape(-1, latents.shape[-1]).float()
        self.latent_mean.copy_(flat.mean(0))
        self.latent_std.copy_(flat.std(0).clamp_min(1e-4))

    def standardize(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean) / self.latent_std

    def destandardize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std + self.latent_mean

    # ---- sequences --------------------------------------------------------------------------------------------
    def latent_slots(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, positions, slot index k) of every latent slot (model/core/sequence.py)."""
        return sequence.latent_slots(input_ids, self, self.latent_budget)

    def embed(
        self,
        input_ids: torch.Tensor,
        latents: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        slot_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image features and latents put at their placeholders. → (B, L, D).

        latents: (M, D) in the backbone's embedding space, one per latent slot in row-major order.
        image_embeds: (num_image_tokens, D) precomputed encoder output, instead of pixel_values.
        slot_index: (M,) index of each latent slot inside its sketch (computed from input_ids when not given).
        """
        embeds = self.backbone.get_input_embeddings()(input_ids)
        image_mask = input_ids == self.image_token_id
        num_image_tokens = int(image_mask.sum())
        if image_embeds is None and pixel_values is not None:
            image_embeds = self.encode_images(pixel_values, image_grid_thw).flatten(0, 1)
        num_features = 0 if image_embeds is None else image_embeds.shape[0]
        if num_image_tokens != num_features:
            raise ValueError(
                f"the input has {num_image_tokens} image tokens but {num_features} image features were given "
                f"({self.tokens_per_image} per image)"
            )
        if num_features:
            embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), self.image_inputs(image_embeds).to(embeds.dtype))
        slot_mask = input_ids == self.latent_id
        num_slots, num_latents = int(slot_mask.sum()), 0 if latents is None else latents.shape[0]
        if num_slots != num_latents:
            raise ValueError(f"the input has {num_slots} latent slots but {num_latents} latents were given")
        if num_slots:
            if slot_index is None:
                slot_index = self.latent_slots(input_ids)[2]
            inputs = self.latent_inputs(latents.to(embeds.dtype), slot_index)
            embeds = embeds.masked_scatter(slot_mask.unsqueeze(-1), inputs.to(embeds.dtype))
        return embeds

    def cell_positions(self, latent_budget: int | None = None) -> torch.Tensor | None:
        """The absolute position embedding of each image token (G·G, D), or of each of K pooled sketch slots (K, D):
        a pooled slot's position is the mean over the cells it pools, as its target is the mean of their tokens."""
        if self.cell_rows is None:
            return None
        grid = self.config.merged_grid
        table = (self.cell_rows[:, None] + self.cell_cols[None]).reshape(1, grid * grid, -1)  # (1, G·G, D)
        if latent_budget is None or latent_budget == grid * grid:
            return table[0]
        return vision.pool_tokens(table, grid, latent_budget)[0]

    def image_inputs(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Merged image tokens (N·G·G, D) as the LLM reads them: with their cell positions added."""
        table = self.cell_positions()
        if table is None:
            return image_embeds
        return image_embeds + table.to(image_embeds.dtype).repeat(image_embeds.shape[0] // table.shape[0], 1)

    def latent_inputs(self, latents: torch.Tensor, slot_index: torch.Tensor) -> torch.Tensor:
        """Latents (N, D) as the LLM reads them at latent slots `slot_index` (N,): with their slot positions added."""
        table = self.cell_positions(self.latent_budget)
        if table is None:
            return latents
        return latents + table.to(latents.dtype)[slot_index]

    def position_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_grid_thw: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """3-D rotary positions (3, B, L) and each row's next position (B,). Latent slots count as text."""
        if image_grid_thw is not None and len(image_grid_thw):
            token_type = (input_ids == self.image_token_id).int()
            positions, _ = self.backbone.model.get_rope_index(
                input_ids, mm_token_type_ids=token_type, image_grid_thw=image_grid_thw, attention_mask=attention_mask
            )
        else:
            text = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
            positions = text.unsqueeze(0).expand(3, -1, -1).clone()
        next_positions = positions.masked_fill(attention_mask.unsqueeze(0) == 0, -1).amax(dim=(0, 2)) + 1
        return positions, next_positions

    def run_backbone(self, inputs_embeds, attention_mask, position_ids, cache=None):
        """The language model over embeddings. → (hidden (B, L, D), cache)."""
        out = self.backbone.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=cache is not None,
        )
        return out.last_hidden_state, out.cache

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.backbone.lm_head(hidden)

    def decode_step(self, inputs_embeds, attention_mask, next_positions, cache) -> torch.Tensor:
        """One incremental step through the KV cache.

        inputs_embeds (B, 1, D): a token embedding or a latent per row; attention_mask (B, cached + 1);
        next_positions (B,): each row's position for this input. → hidden (B, 1, D).
        """
        positions = next_positions.view(1, -1, 1).expand(3, -1, 1)
        hidden, _ = self.run_backbone(inputs_embeds, attention_mask, positions, cache)
        return hidden

    def gate_mask(self, input_ids, attention_mask, blind_rows=None) -> torch.Tensor:
        """The 4-D attention mask of whole sequences with this model's sketch gate (model/core/sequence.py)."""
        return sequence.gate_mask(input_ids, attention_mask, self, self.config.sketch_gate, blind_rows)

    # ---- training forward -------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        latents: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        refine_latents: list[torch.Tensor] | None = None,
        with_slot_states: bool = False,
        terms: LossTerms | None = None,
    ) -> ModalMixedOutput:
        """Teacher-forced forward over whole interleaved sequences; with labels, the loss of paper eq. 4.

        labels: (B, L) target token at each position (not shifted), -100 where no text loss is taken (prompt,
        padding, latent slots). latents: (M, D) the latents fed in at the M latent slots, in embedding space, also
        the diffusion targets. With labels: loss = CE over the text labels + λ·diffusion loss of the head at every
        slot, from the state that draws it.

        Parallel decoding (model/core/slot_queries.py): with labels or `with_slot_states`, each sketch also gets its
        query blocks (one per pass), from which its slots are drawn: the diffusion loss is taken there, in every
        pass. refine_latents: up to R tensors (M, D), the drawing each refinement pass re-draws from (the previous
        pass's, as at inference; model/training/sft_batch.py `drawings`). The text logits are those of the real
        positions alone: no real position attends a query.

        terms: what a training recipe changes in that loss (model/core/loss_terms.py: label weights, the answer's
        labels, other diffusion targets, blind rows, the drawing probe, λ for the batch, constant denominators, the
        sketches' pictures in stage 0); None: the loss as it stands.
        """
        terms = terms if terms is not None else LossTerms()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if latents is None and terms.sketch_pixel_values is not None:  # stage 0: pooled from the encoder, with grads
            tokens = self.encode_images(terms.sketch_pixel_values.to(self.dtype), terms.sketch_image_grid_thw)
            latents = vision.pool_tokens(tokens, self.config.merged_grid, self.latent_budget).flatten(0, 1)
        blind_rows = terms.blind_rows
        rows, slot_positions, slot_index = self.latent_slots(input_ids)
        embeds = self.embed(input_ids, latents, pixel_values, image_grid_thw, image_embeds, slot_index)
        positions, _ = self.position_ids(input_ids, attention_mask, image_grid_thw)
        wanted = labels is not None or with_slot_states  # the query blocks only feed the losses and the states
        queries = self.parallel and self.head is not None and len(rows) > 0 and wanted
        gated = self.config.sketch_gate or blind_rows is not None or queries
        mask = self.gate_mask(input_ids, attention_mask, blind_rows) if gated else attention_mask
        columns = None
        if queries:
            pass_inputs = self.pass_inputs(slot_index, refine_latents)
            embeds, positions, mask, columns = add_query_blocks(
                embeds, positions, mask, rows, slot_positions, slot_index, pass_inputs, self.latent_budget
            )
        hidden, _ = self.run_backbone(embeds, mask, positions)
        length = input_ids.shape[1]
        # (P, M, D) the states the slots are drawn from, in each pass (sequential: one pass, the position before)
        states = hidden[rows, columns] if queries else hidden[rows, slot_positions - 1].unsqueeze(0)
        hidden = hidden[:, :length]
        logits = self.logits(hidden)
        out = ModalMixedOutput(logits=logits, hidden=hidden)
        if len(rows) and (queries or not self.parallel):
            out.slot_states = states[-1]
        if labels is None:
            return out
        labels = labels.masked_fill(input_ids == self.latent_id, -100)
        token_loss = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100, reduction="none"
        ).view(labels.shape[0], -1)  # (B, L-1)
        counted = (labels[:, 1:] != -100).float()
        weights = counted if terms.label_weights is None else counted * terms.label_weights[:, 1:].float()
        # a constant over batches of unlike rows (model/training/loss_scale.py), else this batch's own sum
        text_norm = weights.sum().clamp_min(1e-6) if terms.text_norm is None else terms.text_norm
        out.text_loss = (token_loss * weights).sum() / text_norm
        if terms.answer_mask is not None:
            answer = counted * terms.answer_mask[:, 1:].float()
            out.answer_loss = (token_loss * answer).sum() / answer.sum().clamp_min(1.0)
        out.loss = out.text_loss
        if len(slot_positions) and self.head is not None:
            targets = latents if terms.target_latents is None else terms.target_latents
            take = torch.ones_like(rows, dtype=torch.bool)
            if blind_rows is not None:
                take = ~blind_rows.to(rows.device)[rows]
            weight = terms.diffusion_loss_weight
            weight = self.config.diffusion_loss_weight if weight is None else weight
            passes = states.shape[0]
            if bool(take.any()) and weight > 0:  # stage 0 reads latents but trains no head: λ = 0 there
                cond_hidden = states[:, take].flatten(0, 1)  # every pass draws the true sketch
                cond = self.head.condition(cond_hidden, slot_index[take].repeat(passes))
                wanted = self.standardize(targets[take].to(cond.dtype)).repeat(passes, 1)
                out.latent_loss = self.head.loss(wanted, cond)  # a mean over the slots (and passes, draws)
                if terms.latent_norm is not None:
                    out.latent_loss = out.latent_loss * int(take.sum()) / terms.latent_norm
                out.loss = out.text_loss + weight * out.latent_loss
            slot_labels, draw_weight = terms.slot_labels, terms.draw_loss_weight
            known = take & (slot_labels >= 0) if slot_labels is not None else None
            if known is not None and self.draw_probe is not None and draw_weight > 0 and bool(known.any()):
                probe = self.draw_probe(states[:, known].flatten(0, 1)).float()
                out.draw_loss = F.cross_entropy(probe, slot_labels[known].to(rows.device).repeat(passes))
                if terms.draw_norm is not None:
                    out.draw_loss = out.draw_loss * int(known.sum()) / terms.draw_norm
                out.loss = out.loss + draw_weight * out.draw_loss
        return out

    def pass_inputs(self, slot_index: torch.Tensor, refine_latents: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """What the query blocks of each pass are fed: (M, D) each, the first pass the bare queries, refinement
        pass r the queries with the drawing of pass r − 1 (`refine_latents[r - 1]`). Fewer than R drawings give
        only the first passes (`refine_drawings` computes them pass by pass); training passes all R."""
        given = list(refine_latents or [])
        if len(given) > self.refine_passes:
            raise ValueError(
                f"this model re-draws each sketch in {self.refine_passes} refinement passes, so it takes at most that "
                f"many previous drawings (refine_latents), got {len(given)}"
            )
        return [self.query_inputs(slot_index)] + [self.query_inputs(slot_index, d) for d in given]
