"""GRPO rewards: pure functions `(traces, answers, **kw) -> list[float]`, registered by name.

`accuracy` is the paper's binary task reward (exact match of the normalised answer). `format` gives a small bonus
for an answer that ends properly ("The answer is X." before ⟨eos⟩, not truncated). The training config names the
rewards to sum (`rewards: [accuracy]`); add your own function to `REWARDS` to use it.
"""

from model.generation.answers import normalize_answer
from model.generation.trace import Trace


def accuracy(traces: list[Trace], answers: list[str], **_) -> list[float]:
    return [1.0 if t.answer and t.answer == normalize_answer(a) else 0.0 for t, a in zip(traces, answers)]


def format_reward(traces: list[Trace], answers: list[str], weight: float = 0.1, **_) -> list[float]:
    return [weight if t.answer and not t.truncated else 0.0 for t in traces]


REWARDS = {"accuracy": accuracy, "format": format_reward}


def total_reward(names: list[str], traces: list[Trace], answers: list[str]) -> list[float]:
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward {', '.join(unknown)}; registered: {', '.join(REWARDS)}")
    totals = [0.0] * len(traces)
    for name in names:
        for i, value in enumerate(REWARDS[name](traces, answers)):
            totals[i] += value
    return totals
