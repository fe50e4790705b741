"""The regression latent head: the paper's ablation of the diffusion head (its Table 5, "cosine" row).

Same shape and width as `DiffusionHead` (condition c_k = W·h_k + E[k], residual AdaLN blocks, zero-initialised
output), but no noise and no timesteps: the blocks map a learned constant input, modulated by the condition, straight
to the latent, trained with mean squared error on standardised latents (on unit-variance targets this ranks sketches
as a cosine loss does, and keeps their scale). Sampling returns that prediction, so every draw of a condition gives
the same latent: the head can only draw the mean of what it was shown, which is the point of the comparison.

It shares the diffusion head's base (model/core/latent_head.py: `condition`, `loss`, `sample`), so the model, the
engine and training use either one unchanged; `num_steps`, `generator` and `noise` are accepted and ignored.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.core.latent_head import LatentHead


class RegressionHead(LatentHead):
    def __init__(self, latent_dim: int, cond_dim: int, width: int, depth: int, max_slots: int, **_):
        super().__init__(latent_dim, cond_dim, width, depth, max_slots)
        # the blocks' input; not zero, or the zero-initialised output layers would never get a gradient
        self.start = nn.Parameter(torch.randn(width))

    def predict(self, cond: torch.Tensor) -> torch.Tensor:
        """The predicted standardised latent. cond (N, width) → (N, D)."""
        return self.blocks_out(self.start.expand(cond.shape[0], -1), cond)

    def loss(self, target: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction. target (N, D) standardised latents, cond (N, width)."""
        return F.mse_loss(self.predict(cond).float(), target.float())

    @torch.no_grad()
    def sample(self, cond, num_steps: int = 1, generator=None, noise=None, solver: str = "ddim") -> torch.Tensor:
        """The prediction (deterministic). cond (N, width) → (N, D)."""
        return self.predict(cond)
