"""The report's sweep section: the grid as it stands (every planned point, the missing ones named), its recipe, and
the claims checked on it; and the demo's refine passes as audited on validation.

    sweep_section()          # markdown lines for docs/RESULTS.md (empty without a registered grid or audits)
    refine_section()         # the validation audit of each refine pass and the number chosen

A point counts as the current grid's when the registry's `sweep_grid` does not list it as missing (pipeline/ship.py
writes it); a stored audit of the same name from an earlier grid is not shown as this grid's.
"""

import re

from pipeline import results
from pipeline.claims import check_claims, claims_table
from pipeline.layout import PROFILES, SWEEP
from pipeline.results import SKETCH_FAMILIES, Result, mean, num, pct, points, registry

MISSING = "not trained yet"


def grid_state() -> tuple[dict, set[str]]:
    """(the registered grid's recipe, the names of the grid's points (SWEEP) not registered for it yet): a point
    counts only when the registry's `sweep_grid` plans it and does not list it as missing (without that record every
    point is missing)."""
    grid = registry().get("sweep_grid") or {}
    current = {name.split("/", 1)[1] for name in grid.get("points", [])} - {
        name.split("/", 1)[1] for name in grid.get("missing", [])}  # fmt: skip
    return grid.get("recipe") or {}, {p.name for p in SWEEP} - current


def sweep_table(missing: set[str]) -> str:
    lines = ["| point | K | λ | head | decoding | auto % [95 %] | oracle % | sketch families: auto | sketch families: "
             "auto − noise | seconds / answer |", "|---|---:|---:|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for point in SWEEP:
        r = Result(f"sweep-{point.name}")
        head = f"| {point.name} | {point.latent_budget} | {point.diffusion_loss_weight:g} | {point.head_type} | "
        if point.name in missing or not r.exists:
            lines.append(head + f"{point.sketch_decoding} | *{MISSING}* | – | – | – | – |")
            continue
        auto = mean([r.get("auto", f) for f in SKETCH_FAMILIES])
        use = mean([r.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
        lines.append(head + f"{r.config.get('sketch_decoding', 'sequential')} | {r.cell('auto', 'overall')} | "
                     f"{pct(r.get('oracle'))} | {pct(auto)} | {points(use)} | "
                     f"{num(r.get('auto', 'overall', 'latency_mean_s'), 2)} |")  # fmt: skip
    return "\n".join(lines)


def sweep_section() -> list[str]:
    recipe, missing = grid_state()
    trained = [p.name for p in SWEEP if p.name not in missing and Result(f"sweep-{p.name}").exists]
    if not trained and not recipe:
        return []
    first = Result(f"sweep-{trained[0]}") if trained else None
    said = recipe.get("lineage", "the grid's recipe (not recorded)")
    state = "Every point is in."
    if missing:
        state = (f"**Not trained yet: {', '.join(sorted(missing, key=_order))}** (`python -m pipeline.demo --stages "
                 "sweep --points …`, then `python -m pipeline.ship --sweep-only`).")  # fmt: skip
    parts = ["### The sweep: K, λ, the head and the decoding", "",
             f"Each point: {said}; {recipe.get('supervised_steps', '?')} supervised steps. Audited on the test split "
             f"({first.config.get('num_examples', '?') if first else '?'} puzzles each: auto, oracle, noise-latents; "
             f"seconds per answer in batches of 32). {state}", "", sweep_table(missing), ""]  # fmt: skip
    rows = check_claims({p.name: Result(f"sweep-{p.name}") for p in SWEEP}, SKETCH_FAMILIES, missing)
    parts += ["#### The claims, checked on this grid", "",
              "`auto` over the puzzles of the sketch families, each point against the other on the same puzzles: the "
              "paired difference with its 95 % interval (pipeline/claims.py); holds / does not hold: the interval "
              "lies on the claimed side of zero / on the other; within noise: it covers zero.", "",
              claims_table(rows), ""]  # fmt: skip
    return parts


def _order(name: str) -> int:
    return next((i for i, p in enumerate(SWEEP) if p.name == name), len(SWEEP))


def refine_section() -> list[str]:
    """The validation audits of the refine passes (validation-refine-<i>) and the choice the registry records."""
    found = sorted((int(m.group(1)), Result(m.group(0))) for m in
                   (re.fullmatch(r"validation-refine-(\d+)", p.stem) for p in _stored()) if m)  # fmt: skip
    if not found:
        return []
    lines = ["| refine pass | checkpoint | auto (sketch families) | auto, all families [95 %] | use | oracle |",
             "|---:|---|---:|---|---:|---:|"]  # fmt: skip
    for i, r in found:
        auto = mean([r.get("auto", f) for f in SKETCH_FAMILIES])
        use = mean([r.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
        oracle = mean([r.get("oracle", f) for f in SKETCH_FAMILIES])
        lines.append(f"| {i} | {r.config.get('checkpoint', '?')} | {pct(auto)} | {r.cell('auto', 'overall')} | "
                     f"{points(use)} | {pct(oracle)} |")  # fmt: skip
    demo = next((e for e in registry()["checkpoints"] if e["name"] == "demo"), {})
    chosen = (demo.get("recipe") or {}).get("refine_passes") if isinstance(demo.get("recipe"), dict) else None
    p = PROFILES["demo"]
    low, high, window = p.min_refine_passes, p.max_refine_passes, p.refine_window
    return ["### The refine passes on the validation split", "",
            "Each pass audited on validation puzzles of every family (auto, noise-latents, oracle). The rule "
            f"(pipeline/refine_choice.py): passes 1 to {low} always; another while the last {window} raised "
            f"validation auto beyond its paired 95 % interval, at most {high}; the pass from pass {low} on with the "
            "best validation auto is chosen. Chosen: "
            f"**{chosen if chosen is not None else 'not recorded'}** passes.", "", "\n".join(lines), ""]  # fmt: skip


def _stored():
    return results.RESULTS.glob("validation-refine-*.json")  # read at call time: tests point it elsewhere
