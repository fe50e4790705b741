"""Loss denominators that do not depend on which rows share a batch: what length-grouped batches need.

    scale = LossScale.of(dataset, cfg)          # once, from the training rows and the recipe
    batch.update(scale.terms())                 # then ModalMixedModel.forward divides by these constants

The model's losses are means over a batch: the text loss over its (weighted) label tokens, the diffusion loss over
its latent slots, the drawing probe's over its known slots. In a random batch every token weighs about 1 / (the
tokens of an average batch). A length-grouped batch (model/training/batch_stream.py) is made of rows of one length,
so of one kind: a batch of sixteen short direct answers holds some 80 label tokens, one of long interleaved traces
1,600, and the per-batch mean gives each token of the first twenty times the weight of the second. Measured on the
demo recipe (benchmarks/equivalence_train.py): grouping with per-batch means read true sketches 12 points worse
(oracle 72.0 against 84.0 on 300 validation puzzles). Dividing each batch's sums by the expected sums of a random
batch of the same size instead gives every token and every slot one weight for the whole run, as a random batch does
on average, so an epoch's gradient is the one of random batching.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossScale:
    text: float  # expected sum of the text loss's label weights in one batch
    latent: float  # expected latent slots that take the diffusion loss in one batch (blind rows take none)
    draw: float  # expected slots with a known cell colour that take the drawing probe's loss

    @classmethod
    def of(cls, dataset, batch_size: int, answer_weight: float, blind_fraction: float, latent_id: int):
        """Per-row means over `dataset` (an SFTDataset of encoded examples) times `batch_size`."""
        text = latent = draw = 0.0
        for e in dataset.encoded:
            ids, labels = torch.tensor(e.input_ids), torch.tensor(e.labels)
            counted = (labels[1:] != -100) & (ids[1:] != latent_id)  # the labels forward scores (shifted by one)
            marks = torch.tensor(e.answer_mask[1:]) if e.answer_mask else torch.zeros_like(counted)
            text += float((counted * (1.0 + (answer_weight - 1.0) * marks)).sum())
            slots = int((ids == latent_id).sum())
            sighted = 1.0 - blind_fraction if slots else 1.0  # blind rows: only among rows with a sketch
            latent += slots * sighted
            draw += sum(1 for s in e.slot_labels if s >= 0) * sighted
        n = max(1, len(dataset.encoded))
        return cls(batch_size * text / n, batch_size * latent / n, batch_size * draw / n)

    def terms(self) -> dict:
        """The recipe terms (model/training/recipe.py) that make forward divide by these constants."""
        return {"text_norm": self.text, "latent_norm": self.latent, "draw_norm": self.draw}
