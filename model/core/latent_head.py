"""What every latent head shares: the condition c_k = W·h_k + E[k], residual AdaLN blocks, a modulated output layer.

    head.condition(hidden, slot_index)   # (N, cond_dim), (N,) → (N, width)
    head.loss(target, cond)               # standardised targets (N, D) → scalar
    head.sample(cond, num_steps)          # → (N, D) standardised latents

The two heads (model/core/diffusion_head.py, the paper's; model/core/regression_head.py, its ablation) differ only in
what the blocks are fed and how a latent comes out: noise and timesteps, or a learned constant. The shape follows
MAR's `diffloss.py`: adaptive layer norm with zero-initialised modulation and output layers, so each block starts as
the identity and the head's first outputs are zeros.
"""

import torch
import torch.nn as nn


class AdaLNBlock(nn.Module):
    """x + gate · MLP(LN(x)·(1 + scale) + shift), with (shift, scale, gate) predicted from the condition."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.modulation[1].weight)  # start as the identity map (MAR, DiT)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class LatentHead(nn.Module):
    """The shared part; a head adds how its blocks are fed (`loss`, `sample`)."""

    def __init__(self, latent_dim: int, cond_dim: int, width: int, depth: int, max_slots: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.cond_proj = nn.Linear(cond_dim, width)
        self.slot_embed = nn.Embedding(max_slots, width)
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

    def blocks_out(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The blocks and the modulated output layer: inputs x (N, width), modulation y (N, width) → (N, D)."""
        for block in self.blocks:
            x = block(x, y)
        shift, scale = self.final_modulation(y).chunk(2, dim=-1)
        return self.output(self.final_norm(x) * (1 + scale) + shift)

    def loss(self, target: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, cond, num_steps: int, generator=None, noise=None, solver: str = "ddim") -> torch.Tensor:
        raise NotImplementedError
