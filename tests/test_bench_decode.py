"""benchmarks/bench_decode.py's per-answer comparison gives the text-only-CoT model the new tokens its 16×16 traces
need (448, as the pipeline's audits do), and the sketching model the engine's default: checked on the arguments
each per-answer run gets, with the timed parts replaced (the benchmark itself is not run here)."""

import statistics

import pytest

from benchmarks import bench_decode
from model.core.checkpoint import build_preset, save_pretrained
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS, GenerationSettings


class Recorder:
    """Stands in for the engine: records each GenerationSettings it is given and answers with a fixed trace."""

    settings: list = []

    def __init__(self, model):
        self.model = model

    def generate(self, prompts, settings):
        Recorder.settings.append(settings)
        return [type("T", (), {"timings": {"total_s": 0.5}, "answer": "x"})() for _ in prompts]


def test_per_answer_passes_its_budget_to_the_engine(monkeypatch):
    monkeypatch.setattr(bench_decode, "Engine", Recorder)
    Recorder.settings = []
    seconds, accuracy = bench_decode.per_answer(None, [("p1", "x"), ("p2", "y")], "text-only", max_new_tokens=448)
    assert (seconds, accuracy) == (statistics.median([0.5, 0.5]), 0.5)
    assert {(s.mode, s.max_new_tokens) for s in Recorder.settings} == {("text-only", 448)}
    bench_decode.per_answer(None, [("p", "x")], "auto")
    assert Recorder.settings[-1].max_new_tokens == GenerationSettings().max_new_tokens


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_text_cot_model_answers_with_448_new_tokens(tmp_path, monkeypatch):
    sketches = save_pretrained(build_preset("tiny", seed=1), tmp_path / "sketches")
    words = save_pretrained(build_preset("tiny", seed=2), tmp_path / "text-cot")
    calls = []

    def per_answer(model, puzzles, mode, max_new_tokens=GenerationSettings.max_new_tokens):
        calls.append((model.name_or_path, mode, max_new_tokens))
        return 1.0, 0.5

    monkeypatch.setattr(bench_decode, "per_answer", per_answer)
    monkeypatch.setattr(bench_decode, "text_throughput", lambda *args: (1.0, 1.0))
    monkeypatch.setattr(bench_decode, "sketch_costs", lambda model, steps, repeats: (1.0, {s: 1.0 for s in steps}))
    monkeypatch.setattr(bench_decode, "throughput", lambda *args: 1.0)
    monkeypatch.setattr(bench_decode.torch, "set_num_threads", lambda n: None)  # the suite's own stays
    models = {}

    def load_model(path):
        model = build_preset("tiny")
        model.name_or_path = str(path)
        models[str(path)] = model
        return model

    monkeypatch.setattr(bench_decode, "load_model", load_model)
    bench_decode.main(["--checkpoint", str(sketches), "--textonly", str(words), "--data", str(tmp_path / "none")])
    assert (str(words), "text-only", TEXT_COT_MAX_NEW_TOKENS) in calls
    assert TEXT_COT_MAX_NEW_TOKENS >= 448
    default = GenerationSettings.max_new_tokens
    assert {(m, budget) for path, m, budget in calls if path == str(sketches)} == {
        ("auto", default), ("noise-latents", default)}  # fmt: skip
