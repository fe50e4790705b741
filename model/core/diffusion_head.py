"""The diffusion latent head: draws one latent embedding from Gaussian noise, conditioned on the LLM's hidden state.

Shape of the design follows MAR's `diffloss.py` (Li et al. 2024): a per-token denoiser made of residual MLP blocks
with adaptive layer norm, zero-initialised modulation and output layers, and each target re-noised several times per
training step (`train_draws`). The condition for slot k of a sketch is c_k = W·h_k + E[k]: a linear map of the hidden
state one position before the slot plus a learned embedding of the slot's index inside the sketch.

Training uses v-prediction (paper, eq. 2: v = α_t·ε − σ_t·x0) on diffusers' `DDPMScheduler`; sampling runs T steps of
`DDIMScheduler` (η = 0, "trailing" spacing so the first step starts from pure noise even at T = 5, and
`set_alpha_to_one` so the last step lands on x0). The head works on *standardised* latents; the caller
de-standardises. `clip_sample=False` everywhere: latents are not images in [-1, 1].

Sampling speed. The engine draws one latent per sketch slot, sequentially, so T denoiser calls sit on the critical
path of every slot. `sample` therefore does the condition-dependent work once per call: the T timestep embeddings
and every block's AdaLN modulation for all T steps come out of two batched matmuls before the loop, and the DDIM
update, which is linear in (x_t, v), is applied as x_prev = A_t·x_t + B_t·v with (A_t, B_t) read off the diffusers
scheduler's own `step` once per T. The loop itself is then only the residual MLP. `sample_reference` runs the plain
scheduler loop; the tests check that both agree.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps

from model.core.latent_head import LatentHead

SOLVERS = ("ddim", "dpm++")


class DiffusionHead(LatentHead):
    def __init__(
        self,
        latent_dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        max_slots: int,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        train_draws: int = 4,
    ):
        super().__init__(latent_dim, cond_dim, width, depth, max_slots)
        self.train_draws = train_draws
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, width)
        self.input_proj = nn.Linear(latent_dim, width)
        self._coefficients = {}  # T → (timesteps, A, B) of DDIM; ("dpm++", T) → (timesteps, C): *_coefficients
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            prediction_type="v_prediction",
            clip_sample=False,
        )

    def predict(self, x_t: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's v prediction. x_t (N, D), timesteps (N,), cond (N, width) → (N, D)."""
        y = self.time_embed(self.time_proj(timesteps).to(cond.dtype)) + cond
        return self.blocks_out(self.input_proj(x_t), y)

    def loss(self, target: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction. target (N, D) standardised latents, cond (N, width)."""
        target = target.repeat(self.train_draws, 1)  # (draws·N, D): several noise levels per target per step
        cond = cond.repeat(self.train_draws, 1)
        num_train = self.noise_scheduler.config.num_train_timesteps
        t = torch.randint(0, num_train, (target.shape[0],), device=target.device, generator=generator)
        noise = torch.randn(target.shape, device=target.device, dtype=target.dtype, generator=generator)
        x_t = self.noise_scheduler.add_noise(target, noise, t)
        goal = self.noise_scheduler.get_velocity(target, noise, t)
        return F.mse_loss(self.predict(x_t, t, cond).float(), goal.float())

    def new_sampler(self, num_steps: int) -> DDIMScheduler:
        """A fresh scheduler for one sampling loop (diffusers schedulers are stateful)."""
        sampler = DDIMScheduler.from_config(
            self.noise_scheduler.config, timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False
        )
        sampler.set_timesteps(num_steps)
        return sampler

    def _start_noise(self, cond, generator, noise):
        if noise is None:
            shape = (cond.shape[0], self.latent_dim)
            noise = torch.randn(shape, device=cond.device, dtype=cond.dtype, generator=generator)
        return noise

    @torch.no_grad()
    def sample_reference(self, cond, num_steps: int, generator=None, noise=None) -> torch.Tensor:
        """The textbook loop: predict, then `scheduler.step`, T times. cond (N, width) → (N, D)."""
        sampler = self.new_sampler(num_steps)
        x = self._start_noise(cond, generator, noise)  # 1. start from pure noise
        for t in sampler.timesteps:
            # 2. predict v at this noise level, 3. step to the next, less noisy level (DDIM, η = 0)
            timesteps = torch.full((cond.shape[0],), int(t), device=cond.device, dtype=torch.long)
            x = sampler.step(self.predict(x, timesteps, cond), t, x).prev_sample
        return x

    def step_coefficients(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(timesteps, A, B) with scheduler.step(v, t, x) == A_t·x + B_t·v for every step of a T-step loop."""
        if num_steps not in self._coefficients:
            sampler = self.new_sampler(num_steps)
            one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
            a = [sampler.step(zero, t, one).prev_sample for t in sampler.timesteps]
            b = [sampler.step(one, t, zero).prev_sample for t in sampler.timesteps]
            self._coefficients[num_steps] = (sampler.timesteps.clone(), torch.cat(a), torch.cat(b))
        return self._coefficients[num_steps]

    @torch.no_grad()
    def sample(self, cond, num_steps: int, generator=None, noise=None, solver: str = "ddim") -> torch.Tensor:
        """Draw standardised latents for each condition. cond (N, width) → (N, D). With the DDIM solver: the same
        result as `sample_reference`, with the per-step work cut to the residual MLP (see the module docstring).
        `solver="dpm++"`: diffusers' DPM-Solver++ (2nd-order multistep) over the same precomputed network."""
        if num_steps < 1:
            raise ValueError(f"diffusion steps must be >= 1, got {num_steps}")
        if solver not in SOLVERS:
            raise ValueError(f"unknown diffusion solver {solver!r}; solvers: {', '.join(SOLVERS)}")
        timesteps, coef_a, coef_b = self.step_coefficients(num_steps)
        if solver == "dpm++":
            timesteps, history = self.dpm_coefficients(num_steps)
            history = history.to(cond.device, cond.dtype)
        # all T steps' conditioning at once: y (T, N, W) → each block's (shift, scale, gate), the final (shift, scale)
        time_emb = self.time_embed(self.time_proj(timesteps.to(cond.device)).to(cond.dtype))  # (T, W)
        y = F.silu(time_emb[:, None] + cond[None])
        block_mods = [block.modulation[1](y).chunk(3, dim=-1) for block in self.blocks]
        final_shift, final_scale = self.final_modulation[1](y).chunk(2, dim=-1)
        coef_a, coef_b = coef_a.to(cond.device, cond.dtype), coef_b.to(cond.device, cond.dtype)
        x = start = self._start_noise(cond, generator, noise)
        predictions = []
        for i in range(len(timesteps)):
            h = self.input_proj(x)
            for block, (shift, scale, gate) in zip(self.blocks, block_mods):
                h = h + gate[i] * block.mlp(block.norm(h) * (1 + scale[i]) + shift[i])
            v = self.output(self.final_norm(h) * (1 + final_scale[i]) + final_shift[i])
            if solver == "dpm++":  # x_{i+1} from the start noise and every prediction so far (multistep)
                predictions.append(v)
                x = history[i + 1, 0] * start + sum(history[i + 1, 1 + j] * p for j, p in enumerate(predictions))
            else:
                x = coef_a[i] * x + coef_b[i] * v
        return x

    def dpm_coefficients(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, C) with C (T + 1, T + 1): the DPM-Solver++ loop's x_i = C[i, 0]·x_0 + Σ_j C[i, 1 + j]·v_j.
        The multistep update is linear in the start noise and the predictions, so running diffusers' own scheduler
        once on basis vectors gives the coefficients; sampling then skips its per-step Python work (a fresh
        scheduler and T `step` calls per draw cost more than the network for one sketch's K latents)."""
        key = ("dpm++", num_steps)
        if key not in self._coefficients:
            sampler = self.new_dpm_sampler(num_steps)
            basis = torch.eye(num_steps + 1, dtype=torch.float64)
            x, rows = basis[0], [basis[0]]
            for i, t in enumerate(sampler.timesteps):
                x = sampler.step(basis[1 + i], t, x).prev_sample
                rows.append(x)
            self._coefficients[key] = (sampler.timesteps.clone(), torch.stack(rows))
        return self._coefficients[key]

    def new_dpm_sampler(self, num_steps: int) -> DPMSolverMultistepScheduler:
        """A fresh DPM-Solver++ (order 2) for one loop; "trailing" spacing, landing on sigma = 0."""
        sampler = DPMSolverMultistepScheduler.from_config(
            self.noise_scheduler.config,
            algorithm_type="dpmsolver++",
            solver_order=2,
            timestep_spacing="trailing",
            final_sigmas_type="zero",
        )
        sampler.set_timesteps(num_steps)
        return sampler
