"""What one generation asks of the engine, as one typed object with its defaults and its checks, written once.

    settings = GenerationSettings(mode="oracle", max_new_tokens=128, seed=7)
    settings.problems()      # {"field": "what is wrong"}; {} when every setting is in range
    settings.check()         # ValueError naming the first problem

The edges build one from what a user typed and check it once (the CLI, the evaluation harness, the app's request,
app/reasoning.py, which also names each problem at its input); the engine takes it as it is. Importable without
torch: the app's page reads the defaults before the model stack is loaded.
"""

from dataclasses import dataclass

from model.generation.modes import MODE_SPECS

# a 16×16 board written out in words is 355–365 tokens (docs/GUIDE.md › sketch-world): a text-only-CoT model needs
# this many new positions wherever it answers (the pipeline's audits, bench_decode, Compare and the Reason tab), where
# the default max_new_tokens cuts its big-board traces short
TEXT_COT_MAX_NEW_TOKENS = 448


@dataclass
class GenerationSettings:
    mode: str = "auto"  # one of model.generation.modes.MODE_SPECS
    max_new_tokens: int = 256  # response positions, latent slots included
    max_sketches: int = 4  # ⟨START⟩ is banned once a row has this many sketches
    diffusion_steps: int | None = None  # T; None = the checkpoint's default
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    # drawn latents snap to the model's codebook (model/core/sketch_codebook.py); None: when it has one
    snap: bool | None = None
    # parallel decoding: refinement passes at inference, at most the R the model was trained with (each of its
    # passes was trained to draw the true sketch); None: the checkpoint's R
    refine_passes: int | None = None

    def problems(self) -> dict[str, str]:
        """Each setting out of range, by field, with the value in the message; {} when they all are in range."""
        checks = {
            "mode": (self.mode in MODE_SPECS, f"unknown mode {self.mode!r}; valid modes: {', '.join(MODE_SPECS)}"),
            "max_new_tokens": (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            "max_sketches": (self.max_sketches >= 0, f"max_sketches must be >= 0, got {self.max_sketches}"),
            "diffusion_steps": (
                self.diffusion_steps is None or 1 <= self.diffusion_steps <= 1000,
                f"diffusion_steps must be between 1 and 1000, got {self.diffusion_steps}",
            ),
            "temperature": (  # NaN fails both comparisons
                0 <= self.temperature <= 100,
                f"temperature must be between 0 and 100, got {self.temperature}",
            ),
            "top_p": (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            "seed": (0 <= self.seed < 2**63, f"seed must be between 0 and 2**63 - 1, got {self.seed}"),
            "refine_passes": (
                self.refine_passes is None or self.refine_passes >= 0,
                f"refine_passes must be >= 0, got {self.refine_passes}",
            ),
        }
        return {name: message for name, (ok, message) in checks.items() if not ok}

    def check(self) -> "GenerationSettings":
        """ValueError naming the first setting out of range (the edges call this on what users typed); self."""
        for message in self.problems().values():
            raise ValueError(message)
        return self
