"""The audit on every core: its modes split across processes of one thread each (`python -m model.evaluate --jobs N`).

    groups = mode_groups(["direct", "text-only", "auto", "noise-latents", "oracle"], jobs=2)
    workers = start_workers(argv, groups[1:], out)      # the other groups, each `python -m model.evaluate` again
    ...                                                 # this process evaluates groups[0] meanwhile
    predictions = collect(workers)                      # their predictions.parquet, read back

Why processes and not threads: decoding is a loop of small matmuls (one token or latent of 32 rows at a time), too
small for two threads to share well. Two processes of one thread each keep both cores busy on whole answers
instead; benchmarks/bench_train.py times both ways on the same puzzles. Each example has its own seed, the same in
every mode and batch (model/evaluation/harness.py), so which process answers a mode changes no answer.

`auto` and the modes that insert other puzzles' sketches (`shuffled-latents`) stay in the first group, the one this
process runs: they insert the sketches auto drew, and the sketch-quality probe reads auto's traces. The workers log
their switch events into the same store (one part file per call, named by process) and write their results into
`OUT/.workers/<i>`, which this process reads and then removes.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from model.generation.modes import mode_names

# the rough cost of a mode against one that draws every sketch (direct answers a few tokens; text-only no latents)
COST = {"direct": 0.15, "text-only": 0.6}


def mode_groups(modes: list[str], jobs: int) -> list[list[str]]:
    """`modes` in at most `jobs` groups of about equal cost, each in the given order; group 0 holds auto and the
    modes that insert its sketches for other puzzles. Fewer groups when there are fewer modes."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    first = ["auto", *mode_names(given="other")]  # they share auto's traces: always this process's group
    groups = [[m for m in modes if m in first]] + [[] for _ in range(jobs - 1)]
    cost = [sum(COST.get(m, 1.0) for m in groups[0])] + [0.0] * (jobs - 1)
    for mode in sorted((m for m in modes if m not in first), key=lambda m: -COST.get(m, 1.0)):
        lightest = min(range(jobs), key=lambda i: cost[i])
        groups[lightest].append(mode)
        cost[lightest] += COST.get(mode, 1.0)
    groups = [sorted(g, key=modes.index) for g in groups]
    return [groups[0]] + [g for g in groups[1:] if g]


def start_workers(argv: list[str], groups: list[list[str]], out: str | Path, event_log: str) -> list:
    """One `python -m model.evaluate` per group at one thread: the same arguments, its modes, no probe, the same
    event store, its results in OUT/.workers/<i>. → [(process, folder)]."""
    workers = []
    for i, group in enumerate(groups, start=1):
        folder = Path(out) / ".workers" / str(i)
        shutil.rmtree(folder, ignore_errors=True)
        args = [*argv, "--modes", ",".join(group), "--out", str(folder), "--jobs", "1", "--probe-split", "",
                "--event-log", event_log]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        folder.mkdir(parents=True)
        with open(folder / "log.txt", "w") as log:  # a file, not a pipe: a full pipe would stall the worker
            process = subprocess.Popen([sys.executable, "-m", "model.evaluate", *args], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        workers.append((process, folder))
    return workers


def collect(workers: list) -> pd.DataFrame:
    """Wait for every worker; their predictions, concatenated. RuntimeError with a worker's last lines when one
    fails."""
    frames, failed = [], []
    for process, folder in workers:
        process.wait()
        if process.returncode:
            tail = "\n".join((folder / "log.txt").read_text(errors="replace").strip().splitlines()[-5:])
            failed.append(f"worker for {folder.name} exited with {process.returncode}:\n{tail}")
            continue
        frames.append(pd.read_parquet(folder / "predictions.parquet"))
    if failed:
        raise RuntimeError("\n".join(failed))
    if workers:
        shutil.rmtree(Path(workers[0][1]).parent, ignore_errors=True)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stop(workers: list) -> None:
    """Kill the workers still running (this process failed or was interrupted)."""
    for process, _ in workers:
        if process.poll() is None:
            process.kill()
            process.wait()
