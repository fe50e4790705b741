"""The Sweeps panels say how each point was trained (supervised steps, GRPO or not, the task suite's version, as
far as its registry entry records them) in the caption and on hover, and draw every family's 95 % interval as the
overall curve's: the families' lines sit a little apart around each x value, so no interval hides another."""

import math

from sweep_grids import NEW_GRID, grid_registry

from analysis import figures, sweeps
from app import sweeps_tab


def _registry(recipes: dict[str, dict]) -> dict:
    registry = grid_registry(NEW_GRID)
    for entry in registry["checkpoints"]:
        entry.update(recipes.get(entry["name"], {}))
    return registry


def test_training_in_words():
    entry = dict(name="sweep/k4-l1", stage="sft", parent="warmup")
    assert sweeps.training_text(entry) == (
        "supervised steps not recorded, stage sft from warmup, no GRPO, data version not recorded"
    )
    entry["recipe"] = {"supervised_steps": 1200, "data_version": "6"}
    assert sweeps.training_text(entry) == "1200 supervised steps, stage sft from warmup, no GRPO, sketch-world v6"
    lineage = "… 20 GRPO steps again (sketch-world v4, …)"
    demo = dict(name="demo", stage="grpo", parent="transfer", recipe={"supervised_steps": 4800, "lineage": lineage})
    assert sweeps.training_text(demo) == "4800 supervised steps, stage grpo from transfer, with GRPO, sketch-world v4"
    old = dict(name="sweep/k8-l1", stage="refine", parent="warmup", recipe="previous", supervised_steps=2400)
    assert sweeps.training_text(old).endswith("no GRPO, data version not recorded, an earlier recipe")
    assert sweeps.training_text(old).startswith("2400 supervised steps")


def test_captions_and_hover_name_each_points_training():
    recipe = {"recipe": {"supervised_steps": 1200, "data_version": "6"}}
    registry = _registry({name: recipe for name, *_ in NEW_GRID})
    registry["checkpoints"][1]["recipe"] = {
        "supervised_steps": 2400,
        "data_version": "6",
    }  # sweep/k8-l1 trained longer
    table = sweeps.metrics_table(registry)
    panels = dict(zip((s.key for s in sweeps.PANEL_SPECS), sweeps.sweep_panels(table, registry)))
    assert sweeps_tab.caption(panels["head"]) == (
        "Draws 2 point(s): `sweep/k64-l1`, `sweep/k64-l1-regression`. Each trained: 1200 supervised steps, stage "
        "refine from warmup, no GRPO, sketch-world v6."
    )
    caption = sweeps_tab.caption(panels["accuracy_vs_k"])  # trained differently: each point says its own
    assert "`sweep/k8-l1` (2400 supervised steps, stage refine from warmup, no GRPO, sketch-world v6)" in caption
    assert "`sweep/k4-l1` (1200 supervised steps" in caption
    figure = figures.sweep_panel(panels["accuracy_vs_k"])
    maze = next(trace for trace in figure.data if trace.name == "maze")
    name, k, value, training, lines = maze.customdata[1]
    assert (name, k) == ("sweep/k8-l1", "8") and training.startswith("2400 supervised steps")
    assert value == "31 % [26–36 %]"  # maze of point 1: 0.31 ± 0.05
    assert "trained: %{customdata[4]}" in maze.hovertemplate and lines == training.replace(", ", "<br>")
    assert sweeps.points_table(registry, list(panels.values())).set_index("name").loc["sweep/k8-l1", "training"] == (
        "2400 supervised steps, stage refine from warmup, no GRPO, sketch-world v6"
    )


def test_every_familys_interval_is_drawn_apart():
    registry = grid_registry(NEW_GRID)
    table = sweeps.metrics_table(registry)
    for key in ("accuracy_vs_k", "accuracy_vs_lambda", "use_vs_k"):
        panel = dict(zip((s.key for s in sweeps.PANEL_SPECS), sweeps.sweep_panels(table, registry)))[key]
        figure = figures.sweep_panel(panel)
        assert sorted(trace.name for trace in figure.data) == ["fold", "maze", "overall"]
        at = {}  # x value → where each family is drawn
        for trace in figure.data:
            bars = [*trace.error_y.array, *trace.error_y.arrayminus]  # ± 0.05 (accuracy), ± 0.02 (use)
            assert trace.error_y.visible is not False and all(b is not None and b > 0.01 for b in bars), trace.name
            for (_, x, *_), drawn in zip(trace.customdata, trace.x):
                at.setdefault(float(x), []).append(drawn)
        values = sorted(at)
        gap = min(math.log(b / a) for a, b in zip(values, values[1:]))
        for x, drawn in at.items():
            assert len(set(drawn)) == 3, "no two families' intervals at one place"
            assert all(abs(math.log(d / x)) <= figures.DODGE * gap / 2 + 1e-9 for d in drawn), "beside their x value"
