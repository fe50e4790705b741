"""How many threads a process should use on a machine it may share with a training run.

    from model.core.threads import training_runs, share_cores
    share_cores("evaluation")     # one thread, with a note, while a `python -m model.train` process runs

Two processes that each run two threads on two cores do not share them evenly: the threads of each spin while they
wait for the other's, and a training step beside a second two-thread job took 5× as long instead of 2× (benchmarks/
bench_train.py measures it). So what starts beside a training run (an evaluation, the test suite) takes one thread,
and the pipeline never runs two multi-threaded jobs at once (pipeline/demo.py `--jobs`).
"""

import os
from pathlib import Path

import torch

TRAINING = ("model.train", "model/train.py")  # how a training process shows in its command line


def training_runs() -> list[int]:
    """Process ids of the training runs on this machine other than this process and its parents, stopped ones left
    out (Linux /proc; elsewhere none are found)."""
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [w.decode(errors="replace") for w in words]
        if int(entry.name) not in mine and any(w in TRAINING for w in text) and not _stopped(entry):
            found.append(int(entry.name))
    return sorted(found)


def _stopped(entry: Path) -> bool:
    """Whether the process is stopped (SIGSTOP, `kill -STOP`): it takes no core until it is continued."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("T")  # the state follows the command name in parentheses


def share_cores(what: str) -> bool:
    """One thread for this process when a training run is going (printing which); True when it cut the threads."""
    runs = training_runs()
    if not runs:
        return False
    torch.set_num_threads(1)
    print(f"note: a training run is going (process {runs[0]}): {what} uses one thread beside it")
    return True
