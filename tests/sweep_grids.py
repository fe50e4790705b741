"""Checkpoint registries shaped like the shipped ones, for the Sweeps tests (tests/test_analysis.py,
tests/test_app_checkpoints.py) and the app server of tests/test_app_client.py: the one-pass recipe's grid
(pipeline/layout.py SWEEP), the previous recipe's, and the entries that are registered but never plotted."""

NEW_GRID = [  # (name, K, λ, head, decoding): the one-pass recipe's grid (pipeline/layout.py SWEEP)
    *[(f"sweep/k{k}-l1", k, 1.0, "diffusion", "parallel") for k in (4, 8, 16, 32, 64)],
    ("sweep/k64-l0.1", 64, 0.1, "diffusion", "parallel"),
    ("sweep/k64-l10", 64, 10.0, "diffusion", "parallel"),
    ("sweep/k64-l1-regression", 64, 1.0, "regression", "parallel"),  # an ablation point at a sweep point's K
    ("sweep/k64-l1-sequential", 64, 1.0, "diffusion", "sequential"),
]
OLD_GRID = [  # the previous recipe's: λ at K = 32, no sketch_decoding field, no `use`
    *[(f"sweep/k{k}-l1", k, 1.0, "diffusion", None) for k in (4, 8, 16, 32, 64)],
    ("sweep/k32-l0.1", 32, 0.1, "diffusion", None),
    ("sweep/k32-l10", 32, 10.0, "diffusion", None),
    ("sweep/k64-l1-regression", 64, 1.0, "regression", None),
]
OTHERS = [  # registered, never plotted: the demo shares every axis with sweep/k64-l1
    ("demo", 64, 1.0, "diffusion", "parallel"),
    ("demo-sequential", 64, 1.0, "diffusion", "sequential"),
    ("baseline/text-cot", 64, 1.0, "diffusion", "sequential"),
]


def grid_registry(points, with_use=True) -> dict:
    """A registry of `points` plus OTHERS; point i answers maze i / 100 + 0.3 (fold 0.1 less), its interval ± 0.05,
    noise-latents 0.1 below, and (`with_use`) a `use` of 0.2 + i / 100 with an interval of ± 0.02."""
    entries = []
    for i, (name, k, lam, head, decoding) in enumerate([*points, *OTHERS]):
        accuracy = {"maze": 0.3 + i / 100, "fold": 0.2 + i / 100, "overall": 0.25 + i / 100}
        metrics = {
            "accuracy": accuracy,
            "ci_low": {f: v - 0.05 for f, v in accuracy.items()},
            "ci_high": {f: v + 0.05 for f, v in accuracy.items()},
            "accuracy_noise_latents": {f: v - 0.1 for f, v in accuracy.items()},
            "latency_s": k / 10,
        }
        if with_use:
            use = {f: 0.2 + i / 100 for f in accuracy}
            metrics.update(use=use, use_ci_low={f: v - 0.02 for f, v in use.items()},
                           use_ci_high={f: v + 0.02 for f, v in use.items()})  # fmt: skip
        entry = dict(name=name, path=f"assets/checkpoints/{name}", latent_budget=k, diffusion_loss_weight=lam,
                     head_type=head, stage="refine", parent="warmup", metrics=metrics)  # fmt: skip
        if decoding is not None:
            entry["sketch_decoding"] = decoding
        entries.append(entry)
    return {"checkpoints": entries}
