"""Speed of the analysis hot paths, each against a naive baseline measured in the same run.

    python -m benchmarks.bench_analysis                  # prints a markdown table
    python -m benchmarks.bench_analysis --write-readme   # also replaces the table between the README markers

1. Nearest-neighbour query over a 10k gallery of the checkpoint's K × D vectors, one sketch and a batch of 64 —
   baseline: numpy that re-normalises the gallery per query and fully sorts. Target <= 5 ms per query. Then the
   reduced-dimension index (`analysis.neighbours.build_index`: 128 principal directions, 64 candidates re-ranked
   exactly) against the exact scan in the same run, with its recall@5 (the share of the exact top 5 it returns).
   An index like this only works on data whose energy sits in few directions, so it is measured on two galleries:
   vectors drawn with the singular-value spectrum of the shipped checkpoint's own gallery (its sketch-world pictures
   encoded by `sketch_targets`, measured in this run; the energy share of its top 128 directions is printed) with
   fresh draws as queries, and isotropic random vectors, where no reduction can work (the worst case).
2. UMAP placement of one sketch into a fitted map of 3000 points (restored from the cache), and the restore itself in
   a warm and in a fresh process (the latter mostly numba compilation, unless `enable_umap_kernel_cache()` lets a
   later process load the kernels from numba's disk cache, which this benchmark then writes) — baseline: refitting
   the map with the sketch included, which is what a design without persistence would do. Target <= 200 ms per
   placement.
3. `switching.summary` over 1M event rows — baseline: the same summary (rates, sketch counts, accuracy, START
   position, loop detection) written with pandas groupby and merge. Target <= 1 s.

Data are synthetic (random unit vectors, Poisson sketch counts); timings are medians of repeated runs after warm-up.
Simplified: wall-clock time on whatever machine runs it; the numbers depend on its cores and memory bandwidth.
"""

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
from analysis import switching  # noqa: E402
from analysis.neighbours import Gallery, build_index, recall_of_index, top_k  # noqa: E402
from analysis.projection import fit_projection, forget_restored, load_or_fit_projection  # noqa: E402
from app.gallery import encode_gallery, gallery_images  # noqa: E402
from benchmarks.doc_tables import write_section  # noqa: E402
from model.core.checkpoint import load_model, read_config  # noqa: E402
from model.generation.cli import DEFAULT_CHECKPOINT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NUM_LATENTS, DIM = 32, 256  # the checkpoint's K and D; main() sets them from --checkpoint


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def random_gallery(num: int, num_latents: int, dim: int, seed: int) -> tuple[Gallery, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((num, num_latents * dim), dtype=np.float32)
    vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    ids = [f"e{i}" for i in range(num)]
    meta = pd.DataFrame(
        {"key": ids, "example_id": ids, "family": "f", "role": "problem", "image_index": 0, "split": ""}
    )
    return Gallery(vectors, meta, num_latents, dim, fingerprint=f"bench-{num}-{seed}"), raw


def real_spectrum(checkpoint: str, per_family: int) -> np.ndarray:
    """Singular values of the checkpoint's app gallery (unit rows), largest first."""
    model = load_model(checkpoint).eval()
    vectors = encode_gallery(model, gallery_images(per_family)).vectors
    return np.linalg.svd(vectors.astype(np.float64), compute_uv=False)


def spectrum_gallery(num: int, spectrum: np.ndarray, seed: int) -> tuple[Gallery, np.ndarray]:
    """A gallery and 64 queries drawn as Gaussians with `spectrum` (singular values) along random orthonormal
    directions, plus isotropic noise holding 1% of the energy; rows unit length."""
    rng = np.random.default_rng(seed)
    width = NUM_LATENTS * DIM
    basis = np.linalg.qr(rng.standard_normal((width, len(spectrum)), dtype=np.float32))[0]  # (W, r)
    scale = (spectrum / np.sqrt(np.sum(spectrum**2))).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        x = (rng.standard_normal((n, len(spectrum)), dtype=np.float32) * scale) @ basis.T
        x += rng.standard_normal((n, width), dtype=np.float32) * np.float32(0.1 / np.sqrt(width))  # 1% energy
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    vectors = draw(num)
    ids = [f"e{i}" for i in range(num)]
    meta = pd.DataFrame(
        {"key": ids, "example_id": ids, "family": "f", "role": "problem", "image_index": 0, "split": ""}
    )
    return Gallery(vectors, meta, NUM_LATENTS, DIM), draw(64).reshape(64, NUM_LATENTS, DIM)


def bench_index(checkpoint: str, per_family: int) -> list[dict]:
    """The reduced-dimension index against the exact scan, per query, with recall@5."""
    spectrum = real_spectrum(checkpoint, per_family)
    energy = float(np.sum(spectrum[:128] ** 2) / np.sum(spectrum**2))
    print(f"{checkpoint}: gallery of {len(spectrum)} pictures; its top 128 directions hold {energy:.2%} of the energy")
    rows = []
    random, _ = random_gallery(10_000, NUM_LATENTS, DIM, seed=0)
    random_queries = np.random.default_rng(1).standard_normal((64, NUM_LATENTS, DIM), dtype=np.float32)
    matched, matched_queries = spectrum_gallery(10_000, spectrum, seed=5)
    for name, gallery, queries in (
        (f"demo-spectrum vectors ({energy:.1%} of the energy in 128 directions)", matched, matched_queries),
        ("isotropic random vectors (worst case)", random, random_queries),
    ):
        start = time.perf_counter()
        index = build_index(gallery)
        built = time.perf_counter() - start
        query = queries[0]
        fast, exact = [], []
        for _ in range(5):  # interleaved, so both see the same share of a machine other jobs use too
            fast.append(median_seconds(functools.partial(top_k, gallery, query, k=5, index=index), repeats=10))
            exact.append(median_seconds(functools.partial(top_k, gallery, query, k=5), repeats=5))
        fast, exact = float(np.median(fast)), float(np.median(exact))
        recall = recall_of_index(gallery, index, queries, k=5)
        label = f"NN top-5, 10k x {NUM_LATENTS * DIM}, one query, index (built in {built:.1f} s), {name}"
        rows.append(row(label, fast, exact, 0.005, recall=recall, baseline_name="exact scan"))
    return rows


def bench_neighbours() -> list[dict]:
    gallery, raw = random_gallery(10_000, NUM_LATENTS, DIM, seed=0)
    queries = np.random.default_rng(1).standard_normal((64, NUM_LATENTS, DIM), dtype=np.float32)

    def naive(q: np.ndarray) -> np.ndarray:
        flat = q.reshape(-1)
        sims = raw @ flat / (np.linalg.norm(raw, axis=1) * np.linalg.norm(flat))
        return np.argsort(-sims)[:5]

    one = median_seconds(lambda: top_k(gallery, queries[0], k=5), repeats=20)
    batch = median_seconds(lambda: top_k(gallery, queries, k=5), repeats=5) / len(queries)
    base = median_seconds(lambda: naive(queries[0]), repeats=10)
    assert top_k(gallery, queries[0], k=5)["gallery_index"].tolist() == naive(queries[0]).tolist()
    return [
        row(f"NN top-5, 10k x {NUM_LATENTS * DIM}, one query, exact scan", one, base, 0.005),
        row(f"NN top-5, 10k x {NUM_LATENTS * DIM}, per query in a batch of 64, exact scan", batch, base, 0.005),
    ]


def bench_projection() -> list[dict]:
    gallery, _ = random_gallery(3000, 32, 256, seed=2)
    sketch = np.random.default_rng(3).standard_normal((1, 32, 256), dtype=np.float32)
    with tempfile.TemporaryDirectory() as cache:
        load_or_fit_projection(cache, gallery)  # first fit: kNN graph + UMAP, and numba compilation
        forget_restored()  # only the cache file is left, as for a new request in a new process
        start = time.perf_counter()
        restored = load_or_fit_projection(cache, gallery)
        restore = time.perf_counter() - start
        fresh = fresh_process_restore(cache)
        fresh_process_restore(cache, kernel_cache=True)  # populates numba's cache if this is its first use
        fresh_cached = fresh_process_restore(cache, kernel_cache=True)
    transform = median_seconds(lambda: restored.transform(sketch), repeats=20)
    with_sketch = Gallery(
        np.concatenate([gallery.vectors, _unit(sketch)]),
        pd.concat([gallery.meta, gallery.meta.iloc[:1].assign(key="sketch")], ignore_index=True),
        32,
        256,
    )
    refit = median_seconds(lambda: fit_projection(with_sketch), repeats=1, warmup=0)  # numba already compiled
    return [
        row("UMAP place one sketch, map of 3000", transform, refit, 0.2),
        row("UMAP restore from cache, warm process", restore, refit, None),
        row("UMAP restore + first placement, fresh process", fresh, refit, None),
        row("same, fresh process with enable_umap_kernel_cache()", fresh_cached, refit, None),
    ]


def fresh_process_restore(cache: str, kernel_cache: bool = False) -> float:
    """Seconds a new Python process spends restoring the cached map and placing its first sketch.

    Without the kernel cache that is mostly numba compiling umap-learn's kernels; with it, the kernels compiled by
    an earlier process are loaded from numba's on-disk cache (the first such process populates it).
    """
    code = (
        "import time, numpy as np\n"
        "from benchmarks.bench_analysis import random_gallery\n"
        "from analysis.projection import enable_umap_kernel_cache, load_or_fit_projection\n"
        f"if {kernel_cache}: enable_umap_kernel_cache()\n"
        "gallery, _ = random_gallery(3000, 32, 256, seed=2)\n"
        "start = time.perf_counter()\n"
        f"projection = load_or_fit_projection({cache!r}, gallery)\n"
        "projection.transform(np.ones((1, 32, 256), dtype=np.float32))\n"
        "print(time.perf_counter() - start)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _unit(sketch: np.ndarray) -> np.ndarray:
    flat = sketch.reshape(1, -1)
    return flat / np.linalg.norm(flat)


def synthetic_events(num_rows: int, seed: int) -> pd.DataFrame:
    """About num_rows event rows: answers with Poisson(1.5) sketches of K=8, one ANSWER row each."""
    rng = np.random.default_rng(seed)
    num_answers = num_rows // 4  # 1 ANSWER + ~1.5 * (START + END) rows each
    num_sketches = rng.poisson(1.5, num_answers)
    length = rng.integers(100, 400, num_answers)
    answer = np.repeat(np.arange(num_answers), 1 + 2 * num_sketches)
    first_row = np.concatenate([[0], np.cumsum(1 + 2 * num_sketches)[:-1]])
    offset = np.arange(len(answer)) - first_row[answer]  # 0 = ANSWER, then START, END, START, ...
    sketch_index = np.where(offset == 0, -1, (offset - 1) // 2)
    event = np.where(offset == 0, "ANSWER", np.where(offset % 2 == 1, "START", "END"))
    # Sketch i opens at 10 + 30 i and closes K + 1 = 9 positions later.
    token = np.where(offset == 0, -1, 10 + 30 * np.maximum(sketch_index, 0) + np.where(event == "END", 9, 0))
    n = len(answer)
    correct = rng.random(num_answers) < 0.6
    return pd.DataFrame(
        {
            "run_id": "bench",
            "checkpoint": np.array(["ck-a", "ck-b"])[answer % 2],
            "latent_budget": np.full(n, 8, dtype=np.int32),
            "diffusion_loss_weight": np.full(n, 0.5, dtype=np.float32),
            "family": np.array(["maze", "logic", "space", "count"])[answer % 4],
            "example_id": pd.Series(answer).map("ex{}".format).to_numpy(),
            "rollout": np.zeros(n, dtype=np.int32),
            "mode": "auto",
            "event": event,
            "token_index": token.astype(np.int32),
            "relative_position": np.where(offset == 0, np.nan, token / length[answer]).astype(np.float32),
            "sketch_index": sketch_index.astype(np.int32),
            "sketch_length": np.where(offset == 0, 0, 8).astype(np.int32),
            "num_sketches": num_sketches[answer].astype(np.int32),
            "answer_length": length[answer].astype(np.int32),
            "correct": pd.array(correct[answer], dtype="boolean"),
            "truncated": pd.array(np.zeros(n, dtype=bool), dtype="boolean"),
            "latency_s": np.ones(n, dtype=np.float32),
            "time": pd.Timestamp(datetime(2025, 1, 1, tzinfo=UTC)),
        }
    )


def pandas_summary(events: pd.DataFrame, max_sketches: int = switching.DEFAULT_MAX_SKETCHES) -> pd.DataFrame:
    """The baseline: the same summary per family written with pandas groupby and merge."""
    key = list(switching.ANSWER_KEY)
    starts, ends = events["event"] == "START", events["event"] == "END"
    answers = (
        events.assign(is_start=starts, is_end=ends)
        .groupby(key, observed=True)
        .agg(
            num_sketches=("is_start", "sum"),
            num_ends=("is_end", "sum"),
            correct=("correct", "max"),
            truncated=("truncated", "max"),
            latency_s=("latency_s", "max"),
        )
    )
    after_end = events.loc[ends, [*key, "token_index"]].assign(token_index=lambda f: f["token_index"] + 1)
    adjacent = after_end.merge(events.loc[starts, [*key, "token_index"]], on=[*key, "token_index"])
    answers["back_to_back"] = adjacent.groupby(key, observed=True).size().reindex(answers.index, fill_value=0) > 0
    answers["unclosed"] = answers["num_sketches"] > answers["num_ends"]
    answers["truncated_mid_sketch"] = answers["unclosed"] & answers["truncated"].fillna(False)
    answers["repeated"] = (answers["num_sketches"] > max_sketches) | answers["back_to_back"]
    answers["sketched"] = answers["num_sketches"] > 0
    answers["correct"] = answers["correct"].astype("Float64")
    groups = answers.reset_index().groupby("family")
    out = groups.agg(
        num_answers=("num_sketches", "size"),
        start_rate=("sketched", "mean"),
        mean_sketches=("num_sketches", "mean"),
        max_sketches=("num_sketches", "max"),
        accuracy=("correct", "mean"),
        truncated_rate=("truncated", "mean"),
        unclosed_rate=("unclosed", "mean"),
        truncated_mid_sketch_rate=("truncated_mid_sketch", "mean"),
        repeated_rate=("repeated", "mean"),
        mean_latency_s=("latency_s", "mean"),
    )
    out["mean_start_position"] = events[starts].groupby("family")["relative_position"].mean()
    return out.reset_index()


def bench_statistics() -> list[dict]:
    events = synthetic_events(1_000_000, seed=4)
    ours = median_seconds(lambda: switching.summary(events, by=["family"]), repeats=3)
    base = median_seconds(lambda: pandas_summary(events), repeats=3)
    mine = switching.summary(events, by=["family"]).set_index("family")
    theirs = pandas_summary(events).set_index("family")
    for column in theirs.columns:  # the two implementations must agree before their speeds are compared
        assert np.allclose(mine[column].astype(float), theirs.loc[mine.index, column].astype(float)), column
    return [row(f"switching.summary, {len(events) / 1e6:.2f}M event rows", ours, base, 1.0)]


def row(name: str, seconds: float, baseline: float, target: float | None, recall: float | None = None,
        baseline_name: str = "naive") -> dict:  # fmt: skip
    return dict(
        name=name, seconds=seconds, baseline=baseline, target=target, recall=recall, baseline_name=baseline_name
    )


def markdown(rows: list[dict]) -> str:
    lines = ["| measurement | time | baseline | speed-up | recall@5 | target |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        target = f"<= {_fmt(r['target'])}" if r["target"] else "-"
        ratio = r["baseline"] / r["seconds"]
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        base = (
            f"{_fmt(r['baseline'])} ({r['baseline_name']})" if r["baseline_name"] != "naive" else _fmt(r["baseline"])
        )
        lines.append(f"| {r['name']} | {_fmt(r['seconds'])} | {base} | {ratio:.1f}x | {recall} | {target} |")
    return "\n".join(lines)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-readme", action="store_true", help="replace the table between the README markers")
    parser.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT, help="whose gallery spectrum the index is tested on"
    )
    parser.add_argument("--per-family", type=int, default=40, help="sketch-world instances per family in that gallery")
    parser.add_argument("--only", choices=["statistics", "neighbours", "projection"], default=None)
    args = parser.parse_args()
    global NUM_LATENTS, DIM
    config = read_config(args.checkpoint)
    NUM_LATENTS, DIM = config.latent_budget, config.hidden_size
    rows = []
    if args.only in (None, "statistics"):
        rows += bench_statistics()
    if args.only in (None, "neighbours"):
        rows += bench_neighbours() + bench_index(args.checkpoint, args.per_family)
    if args.only in (None, "projection"):
        rows += bench_projection()
    table = markdown(rows)
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    table += f"\n\n{cpus} CPU cores; load average {load:.1f} when the run ended (other jobs share the machine)."
    print(table)
    if args.write_readme:
        if args.only:
            raise SystemExit("--write-readme needs the whole benchmark (no --only)")
        write_section("analysis", table)


if __name__ == "__main__":
    main()
