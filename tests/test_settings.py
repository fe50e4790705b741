"""One typed, checked settings object from the page to the engine (model/generation/settings.py GenerationSettings):
its defaults are the page's, the API's, a Request's and the CLIs', written once; the app reads what a user sent into
it field by field (app/reasoning.py `check_request`), and the mode is checked once, by it. No model is loaded: the
service is a stand-in with the shipped example puzzles."""

import dataclasses
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import reasoning
from app.example_puzzles import load_examples
from app.request import ApiInputs, Request
from model.evaluation import cli as evaluate_cli
from model.evaluation.harness import evaluate
from model.generation import cli as generate_cli
from model.generation.inputs import InputError
from model.generation.settings import GenerationSettings

EXAMPLES = load_examples()


def service():
    """What check_request asks of the app's Service: a checkpoint name resolved, the shipped examples."""
    return SimpleNamespace(resolve=lambda name: name or "tiny", examples=EXAMPLES)


def checked(request: Request) -> GenerationSettings:
    result, problems = reasoning.check_request(service(), request)
    assert not problems, problems
    return result.settings


def test_every_edge_starts_from_the_engines_defaults():
    """A Request, the API's parameters and both CLIs, each left at its defaults, give GenerationSettings() itself."""
    assert checked(Request(question="Which colour?", example_id="maze-1")) == GenerationSettings()
    assert checked(ApiInputs(example_id="maze-1").request(EXAMPLES)) == GenerationSettings()
    picture = str(Path(__file__).resolve().parents[1] / "assets/examples/maze-1-problem-1.png")
    _, _, settings, _ = generate_cli.check_args(generate_cli.parse_args(["--question", "Which?", "--image", picture]))
    assert settings == GenerationSettings()
    args = evaluate_cli.parse_args(["--checkpoint", "tiny", "--data", "d", "--out", "o"])
    used = {f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationSettings) if hasattr(args, f.name)}
    assert used == {k: v for k, v in dataclasses.asdict(GenerationSettings()).items() if k in used} and len(used) >= 4
    harness = {name: p.default for name, p in inspect.signature(evaluate).parameters.items()}
    shared = ("max_new_tokens", "max_sketches", "seed", "temperature", "diffusion_steps")
    assert {k: harness[k] for k in shared} == {k: getattr(GenerationSettings(), k) for k in shared}


def test_what_a_user_sent_becomes_the_engines_types():
    """The page's values (text seed, 0 = the checkpoint's T, snap on = when there is a codebook) are read into one
    GenerationSettings, which is what the Job hands the engine."""
    request = Request.from_page(checkpoint="tiny", example_id="maze-1", files=None, question="Which colour?",
                                mode="zero-latents", temperature=0.5, max_sketches=2.0, diffusion_steps=0,
                                max_new_tokens=48, seed=str(2**63 - 1), snap=True)  # fmt: skip
    want = GenerationSettings(mode="zero-latents", max_new_tokens=48, max_sketches=2, diffusion_steps=None,
                              temperature=0.5, seed=2**63 - 1, snap=None)  # fmt: skip
    settings = checked(request)
    assert settings == want and type(settings.max_sketches) is int and type(settings.seed) is int
    off = checked(dataclasses.replace(request, snap=False, diffusion_steps=7))
    assert (off.snap, off.diffusion_steps) == (False, 7)


def test_each_problem_is_named_by_its_field_and_the_mode_is_checked_once():
    """Every bad setting is reported at once, by field, in the request's order; an unknown mode is
    GenerationSettings' own problem, word for word."""
    request = Request(question="Which colour?", example_id="maze-1", mode="sideways", temperature=-1, max_sketches=1.5,
                      seed="")  # fmt: skip
    result, problems = reasoning.check_request(service(), request)
    assert result is None and list(problems) == ["mode", "temperature", "max_sketches", "seed"]
    request = dataclasses.replace(request, temperature=0.0, max_sketches=1, seed="3")
    _, problems = reasoning.check_request(service(), request)
    assert list(problems) == ["mode"]
    assert str(problems["mode"]) == GenerationSettings(mode="sideways").problems()["mode"]
    with pytest.raises(ValueError, match="unknown mode 'sideways'"):
        GenerationSettings(mode="sideways").check()
    with pytest.raises(InputError, match="temperature must be from 0 to 2"):
        reasoning.prepare(service(), dataclasses.replace(request, mode="auto", temperature=3.0), run_id="r")
