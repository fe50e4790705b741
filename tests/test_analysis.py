"""Switching statistics on a hand-built event table, the CLI, nearest neighbours, caches, UMAP, sweeps, figures."""

import json
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweep_grids import NEW_GRID, OLD_GRID, grid_registry

from analysis import figures, sweeps, switching
from analysis.neighbours import GalleryCacheWarning, build_gallery, load_or_build_gallery, recall_at_k, top_k
from analysis.projection import ProjectionCacheWarning, fit_projection, load_or_fit_projection
from model.generation.events import append_events

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _answer(family, example_id, length, sketches=(), correct=None, truncated=False):
    """Event rows for one answer; sketches are (start, end or None when unclosed) with K = 4."""
    base = dict(
        run_id="r",
        checkpoint="ck",
        latent_budget=4,
        diffusion_loss_weight=0.5,
        family=family,
        example_id=example_id,
        rollout=0,
        mode="auto",
        num_sketches=len(sketches),
        answer_length=length,
        correct=correct,
        truncated=truncated,
        latency_s=1.0,
        time=NOW,
    )
    rows = [dict(base, event="ANSWER", token_index=-1, relative_position=None, sketch_index=-1, sketch_length=0)]
    for i, (start, end) in enumerate(sketches):
        for event, position in (("START", start), ("END", end)):
            if position is not None:
                rows.append(
                    dict(
                        base,
                        event=event,
                        token_index=position,
                        relative_position=position / length,
                        sketch_index=i,
                        sketch_length=4,
                    )
                )
    return rows


@pytest.fixture(scope="module")
def events():
    rows = [
        *_answer("maze", "m1", 100, [(10, 15), (50, 55)], correct=True),
        *_answer("maze", "m2", 100, [], correct=False),
        *_answer("maze", "m3", 100, [(20, 25), (26, 31)], correct=True),  # back to back: END 25, START 26
        *_answer("maze", "m4", 50, [(45, None)], correct=None, truncated=True),  # cut off inside its sketch
        *_answer("logic", "l1", 200, [], correct=True, truncated=True),  # truncated, but not mid-sketch
        *_answer("logic", "l2", 200, [(100, 105)], correct=False),
        *_answer("logic", "l3", 200, [(20 * i, 20 * i + 5) for i in range(10)], correct=True),  # 10 > 8 sketches
    ]
    frame = pd.DataFrame(rows)
    return frame.astype({"correct": "boolean", "relative_position": "float32"})


def test_start_rate(events):
    rates = switching.start_rate(events, by=["family"]).set_index("family")
    assert rates.loc["maze", "num_answers"] == 4 and rates.loc["maze", "num_with_sketch"] == 3
    assert rates["start_rate"].to_dict() == pytest.approx({"maze": 3 / 4, "logic": 2 / 3})
    overall = switching.start_rate(events)
    assert overall["start_rate"].tolist() == pytest.approx([5 / 7])


def test_start_position_histogram(events):
    hist = switching.start_position_histogram(events, by=["family"], bins=10)
    maze = hist[hist["family"] == "maze"].set_index("bin")["count"]
    # maze starts at 10/100, 50/100, 20/100, 26/100, 45/50 -> bins 1, 5, 2, 2, 9 (45/50 is 0.8999999 in float32)
    assert maze.to_dict() == {0: 0, 1: 1, 2: 2, 3: 0, 4: 0, 5: 1, 6: 0, 7: 0, 8: 0, 9: 1}
    logic = hist[hist["family"] == "logic"].set_index("bin")["count"]
    # logic starts at 100/200 and 0, 20, ..., 180 out of 200 -> one per bin, bin 5 twice
    assert logic.to_dict() == {b: 2 if b == 5 else 1 for b in range(10)}
    assert hist.groupby("family")["fraction"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_sketches_per_answer_and_accuracy(events):
    dist = switching.sketch_count_distribution(events, by=["family"])
    maze = dist[dist["family"] == "maze"].set_index("num_sketches")["num_answers"]
    assert maze.to_dict() == {0: 1, 1: 1, 2: 2}
    acc = switching.accuracy_vs_sketches(events).set_index("num_sketches")
    assert acc["num_answers"].to_dict() == {0: 2, 1: 2, 2: 2, 10: 1}
    assert acc["num_graded"].to_dict() == {0: 2, 1: 1, 2: 2, 10: 1}  # m4 was not graded
    assert acc["accuracy"].to_dict() == pytest.approx({0: 0.5, 1: 0.0, 2: 1.0, 10: 1.0})
    capped = switching.accuracy_vs_sketches(events, cap=2).set_index("num_sketches")
    assert capped["num_answers"].to_dict() == {0: 2, 1: 2, 2: 3}


def test_loop_detection(events):
    answers = switching.per_answer(events, max_sketches=8).set_index("example_id")
    assert answers.index[answers["unclosed"]].tolist() == ["m4"]
    assert answers.index[answers["truncated_mid_sketch"]].tolist() == ["m4"]
    assert answers.index[answers["back_to_back"]].tolist() == ["m3"]
    assert answers.index[answers["too_many_sketches"]].tolist() == ["l3"]
    assert sorted(answers.index[answers["repeated"]]) == ["l3", "m3"]
    report = switching.loop_report(events, by=["family"]).set_index("family")
    assert report["num_repeated"].to_dict() == {"logic": 1, "maze": 1}
    assert report.loc["maze", "unclosed_rate"] == pytest.approx(0.25)


def test_summary(events):
    table = switching.summary(events, by=["family"]).set_index("family")
    assert table.loc["maze", "num_answers"] == 4
    assert table.loc["maze", "mean_sketches"] == pytest.approx(5 / 4)
    assert table.loc["logic", "max_sketches"] == 10
    assert table.loc["maze", "accuracy"] == pytest.approx(2 / 3)  # m4 ungraded
    assert table.loc["logic", "accuracy_without_sketch"] == pytest.approx(1.0)
    assert table.loc["logic", "truncated_rate"] == pytest.approx(1 / 3)
    assert table.loc["logic", "truncated_mid_sketch_rate"] == 0
    assert table.loc["maze", "mean_start_position"] == pytest.approx((0.1 + 0.5 + 0.2 + 0.26 + 0.9) / 5)
    overall = switching.summary(events)
    assert len(overall) == 1 and overall["num_answers"].item() == 7
    with pytest.raises(ValueError, match="colour"):
        switching.summary(events, by=["family", "colour"])


def _cli(*args):
    cmd = [sys.executable, "-m", "analysis.switching", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_switching_cli(events, tmp_path):
    store = tmp_path / "events"
    append_events(store, events)
    ok = _cli("--db", str(store), "--by", "family", "--csv", str(tmp_path / "summary.csv"))
    assert ok.returncode == 0, ok.stderr
    assert "start_rate" in ok.stdout and "maze" in ok.stdout and "logic" in ok.stdout
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 2
    bad = _cli("--db", str(store), "--by", "family,colour")
    assert bad.returncode == 2 and "colour" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = _cli("--db", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere" in missing.stderr


def test_switching_cli_skips_damaged_parts_and_says_how_many(events, tmp_path):
    store = tmp_path / "events"
    maze, logic = events[events["family"] == "maze"], events[events["family"] == "logic"]
    kept = Path(append_events(store, maze))
    cut = Path(append_events(store, logic))
    cut.write_bytes(cut.read_bytes()[:-64])  # a part cut short: no footer
    paged = Path(append_events(store, logic))
    data = bytearray(paged.read_bytes())
    data[200:1200] = bytes(b ^ 0xFF for b in data[200:1200])  # the footer reads, the pages do not
    paged.write_bytes(bytes(data))
    done = _cli("--db", str(store), "--by", "family")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[:2] == ["family", "num_answers"]
    assert lines[1].split()[:2] == ["maze", "4"]  # every answer of the whole part, none of the damaged ones
    assert f"switching: skipped 2 damaged part file(s) of {str(store)!r}" in done.stderr
    assert str(cut) in done.stderr and str(paged) in done.stderr and str(kept) not in done.stderr.split("skipped")[-1]


def _clustered(num=200, num_latents=4, dim=8, num_clusters=5, seed=0):
    """Latents (num, K, D) around a few random centres, with their cluster labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, num_latents, dim))
    labels = rng.integers(0, num_clusters, num)
    return (centres[labels] + 0.3 * rng.normal(size=(num, num_latents, dim))).astype(np.float32), labels


def _gallery(latents, labels):
    items = [
        (latents[i], {"example_id": f"e{i}", "role": "problem", "family": f"f{labels[i]}"})
        for i in range(len(latents))
    ]
    gallery = build_gallery(items, encode=lambda images: np.stack(images), batch_size=64)
    gallery.fingerprint = "test-fingerprint"
    return gallery


def test_top_k_and_recall():
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(50, 2, 3)).astype(np.float32)
    gallery = _gallery(latents, np.zeros(50, dtype=int))
    query = latents[17] * 3.0 + 0.01 * rng.normal(size=(2, 3))  # cosine ignores scale
    hits = top_k(gallery, query, k=3)
    assert hits["rank"].tolist() == [1, 2, 3] and hits["key"].iloc[0] == "e17/problem/0"
    assert hits["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-3) and hits["similarity"].is_monotonic_decreasing
    batch = top_k(gallery, latents[[4, 9]], k=1)
    assert batch["example_id"].tolist() == ["e4", "e9"]
    # Sketches 0 and 1 match their true image; sketch 2 claims e5 but is e6, which is not in e5's top 5.
    keys = ["e0/problem/0", "e1/problem/0", "e5/problem/0"]
    sims = gallery.vectors @ gallery.vectors[6]
    assert (sims > sims[5]).sum() >= 5
    recall = recall_at_k(latents[[0, 1, 6]], keys, gallery, ks=(1, 5))
    assert recall == {"recall@1": pytest.approx(2 / 3), "recall@5": pytest.approx(2 / 3), "num_queries": 3}
    with pytest.raises(ValueError, match="not in the gallery"):
        recall_at_k(latents[:1], ["nope"], gallery)


def test_gallery_cache_rebuilds_when_missing_damaged_or_stale(tmp_path):
    latents, labels = _clustered(num=30)
    builds = []

    def build():
        builds.append(1)
        return _gallery(latents, labels)

    with pytest.warns(GalleryCacheWarning, match="no cache"):
        first = load_or_build_gallery(tmp_path, "fp-a", build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole, current cache loads silently
        again = load_or_build_gallery(tmp_path, "fp-a", build)
    assert len(builds) == 1 and np.array_equal(first.vectors, again.vectors)
    assert again.meta["key"].tolist() == first.meta["key"].tolist()

    vectors_file = tmp_path / "gallery.safetensors"
    vectors_file.write_bytes(vectors_file.read_bytes()[:-100])  # truncated, as by a full disk
    with pytest.warns(GalleryCacheWarning, match="damaged"):
        load_or_build_gallery(tmp_path, "fp-a", build)
    data = bytearray(vectors_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the payload still parses: the checksum catches it
    vectors_file.write_bytes(bytes(data))
    with pytest.warns(GalleryCacheWarning, match="damaged"):
        load_or_build_gallery(tmp_path, "fp-a", build)
    with pytest.warns(GalleryCacheWarning, match="stale"):
        rebuilt = load_or_build_gallery(tmp_path, "fp-b", build)
    assert len(builds) == 4 and rebuilt.fingerprint == "fp-b"


def test_umap_seeded_cached_and_transform(tmp_path):
    latents, labels = _clustered(num=200)
    gallery = _gallery(latents, labels)
    first = fit_projection(gallery)
    second = fit_projection(gallery)
    assert np.array_equal(first.coords, second.coords)  # same seed, same map

    cached = load_or_fit_projection(tmp_path, gallery)  # fits and writes the cache
    from analysis import projection

    projection._MEMO.clear()  # as in a fresh process
    restored = load_or_fit_projection(tmp_path, gallery)
    assert restored is not cached and np.array_equal(restored.coords, cached.coords)
    probe = latents[:5] + 0.01
    assert np.allclose(restored.transform(probe), cached.transform(probe))  # identical model behaviour

    spread = np.ptp(cached.coords, axis=0).max()
    placed = restored.transform(latents[:10])
    assert np.linalg.norm(placed - cached.coords[:10], axis=1).max() < 0.1 * spread

    projection._MEMO.clear()
    cache_file = next(tmp_path.glob("projection-*.safetensors"))
    cache_file.write_bytes(cache_file.read_bytes()[:50])
    with pytest.warns(ProjectionCacheWarning, match="damaged"):
        refit = load_or_fit_projection(tmp_path, gallery)
    assert np.array_equal(refit.coords, cached.coords)
    assert set(refit.points(gallery).columns) >= {"x", "y", "family", "role"}


def _registry(tmp_path, checkpoints):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"checkpoints": checkpoints}))
    return path


def _checkpoint(name, k, lam, accuracy, stage="sft"):
    return {
        "name": name,
        "path": f"ckpts/{name}",
        "latent_budget": k,
        "diffusion_loss_weight": lam,
        "stage": stage,
        "parent": None,
        "metrics": {"accuracy": {"overall": accuracy, "maze": accuracy + 0.1}, "latency_s": k / 10},
    }


def test_sweeps(tmp_path):
    path = _registry(
        tmp_path, [_checkpoint("a", 8, 0.5, 0.4), _checkpoint("b", 32, 0.5, 0.6), _checkpoint("c", 32, 1.0, 0.7)]
    )
    table = sweeps.metrics_table(sweeps.load_registry(path))
    assert list(table.columns) == list(sweeps.TABLE_COLUMNS) and len(table) == 9
    budget = sweeps.vs_budget(table, "accuracy", diffusion_loss_weight=0.5)
    assert budget.loc["maze"].to_dict() == pytest.approx({8: 0.5, 32: 0.7})
    lam = sweeps.vs_lambda(table, "accuracy", latent_budget=32)
    assert lam.loc["overall"].to_dict() == pytest.approx({0.5: 0.6, 1.0: 0.7})
    with pytest.raises(ValueError, match=r"\['b', 'c'\]"):
        sweeps.vs_budget(table, "accuracy")  # b and c share K = 32
    latency = sweeps.vs_budget(table, "latency_s", diffusion_loss_weight=0.5)
    assert latency.loc["overall"].to_dict() == pytest.approx({8: 0.8, 32: 3.2})

    bad = _registry(tmp_path, [{"name": "x", "path": "p"}])
    with pytest.raises(ValueError, match=r"registry.json.*'x'.*missing.*latent_budget"):
        sweeps.load_registry(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="registry.json: not valid JSON"):
        sweeps.load_registry(bad)


def test_figures_build(events, tmp_path):
    rates = switching.start_rate(events, by=["family"])
    assert len(figures.start_rate_bar(rates).data) == 1
    hist = switching.start_position_histogram(events, by=["family"])
    assert len(figures.start_position_histogram(hist).data) == 2
    acc = switching.accuracy_vs_sketches(events, by=["family"])
    assert len(figures.accuracy_vs_sketches(acc).data) == 2
    points = pd.DataFrame(
        {"x": [0.0, 1.0], "y": [0.0, 1.0], "family": ["a", "b"], "role": ["problem", "reasoning"], "key": ["k1", "k2"]}
    )
    fig = figures.sketch_map(points, pd.DataFrame({"x": [0.5], "y": [0.5]}))
    assert fig.data[-1].name == "sketches" and fig.data[-1].marker.symbol == "star"
    table = sweeps.metrics_table(sweeps.load_registry(_registry(tmp_path, [_checkpoint("a", 8, 0.5, 0.4)])))
    assert len(figures.metric_vs_budget(sweeps.vs_budget(table)).data) == 2
    assert len(figures.metric_vs_lambda(sweeps.vs_lambda(table)).data) == 2
    assert len(figures.latency_vs_budget(sweeps.vs_budget(table, "latency_s")).data) == 1


def _panels(registry: dict, families=None) -> dict:
    table = sweeps.metrics_table(registry)
    return {spec.key: p for spec, p in zip(sweeps.PANEL_SPECS, sweeps.sweep_panels(table, registry, families))}


def test_each_panel_draws_exactly_its_points():
    registry = grid_registry(NEW_GRID)
    panels = _panels(registry)
    budget = [f"sweep/k{k}-l1" for k in (4, 8, 16, 32, 64)]
    expected = {
        "accuracy_vs_k": budget,
        "use_vs_k": budget,
        "latency_vs_k": budget,
        "accuracy_vs_lambda": ["sweep/k64-l0.1", "sweep/k64-l1", "sweep/k64-l10"],
        "head": ["sweep/k64-l1", "sweep/k64-l1-regression"],
        "decoding": ["sweep/k64-l1", "sweep/k64-l1-sequential"],
    }
    assert {key: p.names for key, p in panels.items()} == expected
    assert all(not p.note for p in panels.values())
    assert panels["accuracy_vs_k"].title == "Accuracy vs K · λ = 1 · diffusion head · parallel decoding"
    assert panels["accuracy_vs_lambda"].held == {"latent_budget": 64, "head_type": "diffusion",
                                                 "sketch_decoding": "parallel"}  # fmt: skip
    assert panels["head"].held == {"latent_budget": 64, "diffusion_loss_weight": 1.0, "sketch_decoding": "parallel"}
    # every value is the point's own, with its own interval: maze of point i is 0.3 + i / 100
    maze = panels["accuracy_vs_k"].data.query("family == 'maze'")
    assert maze["latent_budget"].tolist() == [4, 8, 16, 32, 64]
    assert maze["value"].tolist() == pytest.approx([0.30, 0.31, 0.32, 0.33, 0.34])
    assert (maze["high"] - maze["value"]).tolist() == pytest.approx([0.05] * 5)
    use = panels["use_vs_k"].data.query("family == 'fold'")  # the registry's own use and its paired interval
    assert use["value"].tolist() == pytest.approx([0.20, 0.21, 0.22, 0.23, 0.24])
    assert (use["value"] - use["low"]).tolist() == pytest.approx([0.02] * 5)
    decoding = panels["decoding"].data.query("family == 'overall'")
    by_decoding = dict(zip(decoding["sketch_decoding"], decoding["value"]))
    assert by_decoding == pytest.approx({"parallel": 0.29, "sequential": 0.33})
    assert set(panels["latency_vs_k"].data["family"]) == {"overall"}
    drawn = {name for p in panels.values() for name in p.data["name"]}
    assert not drawn & {"demo", "demo-sequential", "baseline/text-cot"}
    table = sweeps.points_table(registry, list(panels.values())).set_index("name")
    assert table.loc["demo", "panels"] == "" and table.loc["baseline/text-cot", "panels"] == ""
    assert table.loc["sweep/k64-l1", "panels"].split(", ") == [spec.key for spec in sweeps.PANEL_SPECS]
    only = _panels(registry, ["overall"])["head"].data
    assert set(only["family"]) == {"overall"} and len(only) == 2


def test_an_old_grid_is_drawn_as_it_was_trained():
    """No sketch_decoding (sequential, from before parallel decoding), λ at K = 32, no use: use is auto − noise
    without an interval, the λ panel holds K = 32, and the decoding ablation has nothing to compare."""
    panels = _panels(grid_registry(OLD_GRID, with_use=False))
    assert panels["accuracy_vs_k"].names == [f"sweep/k{k}-l1" for k in (4, 8, 16, 32, 64)]
    assert panels["accuracy_vs_k"].held["sketch_decoding"] == "sequential"
    assert panels["accuracy_vs_lambda"].names == ["sweep/k32-l0.1", "sweep/k32-l1", "sweep/k32-l10"]
    assert panels["head"].names == ["sweep/k64-l1", "sweep/k64-l1-regression"]
    use = panels["use_vs_k"].data
    assert use["value"].tolist() == pytest.approx([0.1] * len(use)) and use["low"].isna().all()
    assert "nothing to compare" in panels["decoding"].note
    registry = grid_registry(OLD_GRID, with_use=False)
    table = sweeps.points_table(registry, list(panels.values())).set_index("name")
    assert table.loc["sweep/k4-l1", "sketch_decoding"] == "sequential (not recorded)"
    assert table.loc["demo", "sketch_decoding"] == "parallel"  # recorded: as it is


def test_points_that_still_share_a_place_are_named():
    registry = grid_registry([*NEW_GRID, ("sweep/k8-l1-again", 8, 1.0, "diffusion", "parallel")])
    panels = _panels(registry)
    assert isinstance(panels["accuracy_vs_k"], ValueError)
    assert "['sweep/k8-l1', 'sweep/k8-l1-again']" in str(panels["accuracy_vs_k"])
    assert panels["head"].names == ["sweep/k64-l1", "sweep/k64-l1-regression"]  # the other panels are unaffected


def test_sweep_panel_figures():
    panels = _panels(grid_registry(NEW_GRID))
    lines = figures.sweep_panel(panels["accuracy_vs_k"])
    assert sorted(trace.name for trace in lines.data) == ["fold", "maze", "overall"]
    maze = next(trace for trace in lines.data if trace.name == "maze")
    assert list(maze.x) == [4, 8, 16, 32, 64] and list(maze.error_y.array) == pytest.approx([0.05] * 5)
    assert lines.layout.xaxis.type == "log" and "parallel decoding" in lines.layout.title.text
    bars = figures.sweep_panel(panels["head"])
    assert sorted(trace.name for trace in bars.data) == ["diffusion", "regression"]
    assert bars.layout.barmode == "group" and "K = 64" in bars.layout.title.text
