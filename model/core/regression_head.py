"""The regression latent head: the paper's ablation of the diffusion head (its Table 5, "cosine" row).

Same shape and width as `DiffusionHead` (condition c_k = W·h_k + E[k], residual AdaLN blocks, zero-initialised
output), but no noise and no timesteps: the blocks map a learned constant input, modulated by the condition, straight
to the latent, trained with mean squared error on standardised latents (on unit-variance targets this ranks sketches
as a cosine loss does, and keeps their scale). Sampling returns that prediction, so every draw of a condition gives
the same latent: the head can only draw the mean of what it was shown, which is the point of the comparison.

It has the diffusion head's interface (`condition`, `loss`, `sample`), so the model, the engine and training use
either one unchanged; `num_steps`, `generator` and `noise` are accepted and ignored.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.core.diffusion_head import AdaLNBlock


class RegressionHead(nn.Module):
    def __init__(self, latent_dim: int, cond_dim: int, width: int, depth: int, max_slots: int, **_):
        super().__init__()
        self.latent_dim = latent_dim
        self.cond_proj = nn.Linear(cond_dim, width)
        self.slot_embed = nn.Embedding(max_slots, width)
        # the blocks' input; not zero, or the zero-initialised output layers would never get a gradient
        self.start = nn.Parameter(torch.randn(width))
        self.blocks = nn.ModuleList([AdaLNBlock(width) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.output = nn.Linear(width, latent_dim)
        for layer in (self.final_modulation[1], self.output):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def max_slots(self) -> int:
        return self.slot_embed.num_embeddings

    def condition(self, hidden: torch.Tensor, slot_index: torch.Tensor) -> torch.Tensor:
        """c_k = W·h_k + E[k]. hidden (N, cond_dim), slot_index (N,) → (N, width)."""
        if int(slot_index.max()) >= self.max_slots:
            raise ValueError(f"slot index {int(slot_index.max())} is outside the head's {self.max_slots} slots")
        # in the head's own dtype: a bf16 backbone's states reach the float32 head outside autocast (the engine)
        return self.cond_proj(hidden.to(self.cond_proj.weight.dtype)) + self.slot_embed(slot_index)

    def predict(self, cond: torch.Tensor) -> torch.Tensor:
        """The predicted standardised latent. cond (N, width) → (N, D)."""
        x = self.start.expand(cond.shape[0], -1)
        for block in self.blocks:
            x = block(x, cond)
        shift, scale = self.final_modulation(cond).chunk(2, dim=-1)
        return self.output(self.final_norm(x) * (1 + scale) + shift)

    def loss(self, target: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction. target (N, D) standardised latents, cond (N, width)."""
        return F.mse_loss(self.predict(cond).float(), target.float())

    @torch.no_grad()
    def sample(self, cond, num_steps: int = 1, generator=None, noise=None, solver: str = "ddim") -> torch.Tensor:
        """The prediction (deterministic). cond (N, width) → (N, D)."""
        return self.predict(cond)
