"""How a process finds the training runs beside it (model/core/threads.py): a process whose command line runs
`model.train` is one, until it is stopped (SIGSTOP, as a campaign paused for a benchmark is); this process is not."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from model.core import threads


@pytest.fixture
def fake_training():
    """A sleeping process whose command line names model.train (no training runs)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "model.train"])
    yield proc
    proc.kill()
    proc.wait()


def _state(pid: int) -> str:
    stat = open(f"/proc/{pid}/stat").read()
    return stat[stat.rfind(")") + 2]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads Linux /proc")
def test_a_training_run_is_found_until_it_is_stopped(fake_training, monkeypatch):
    pid = fake_training.pid
    for _ in range(200):  # until the child has started the interpreter with its command line
        if pid in threads.training_runs():
            break
        time.sleep(0.01)
    assert pid in threads.training_runs() and os.getpid() not in threads.training_runs()
    os.kill(pid, signal.SIGSTOP)
    for _ in range(100):  # the state changes asynchronously
        if _state(pid) == "T":
            break
        time.sleep(0.01)
    assert pid not in threads.training_runs(), "a stopped run takes no core"
    os.kill(pid, signal.SIGCONT)
    for _ in range(100):
        if _state(pid) != "T":
            break
        time.sleep(0.01)
    assert pid in threads.training_runs()
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert threads.share_cores("this test") and calls == [1]
