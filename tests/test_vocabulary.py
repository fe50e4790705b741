"""Tests for model/data/vocabulary.py: a checkpoint's training vocabulary and a question's unseen words.

python -m pytest -q tests/test_vocabulary.py
"""

import json

import pytest

from model.data.vocabulary import (
    VOCABULARY_FILE,
    load_vocabulary,
    main,
    question_words,
    save_vocabulary,
    training_vocabulary,
    unseen_words,
)
from model.sketchworld import write_dataset
from model.sketchworld.templates import NOTIONS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    write_dataset(str(out), per_family=30, seed=0, families=["count", "connect", "maze16"])
    return out


def test_question_words_lowercase_strip_punctuation_and_numbers():
    assert question_words("How MANY blue? (Count them!)") == ["how", "many", "blue", "count", "them"]
    assert question_words("Slide the picture's marks 2 cells up, to the 3rd row.") == [
        "slide", "the", "picture", "marks", "cells", "up", "to", "the", "row"]  # fmt: skip
    assert question_words("green-to-red? don’t") == ["green", "to", "red", "don't"]  # curly apostrophe too
    assert question_words("Café 12") == ["café"]


def test_vocabulary_holds_the_training_questions_and_not_the_held_out_words(data, tmp_path):
    words = training_vocabulary(str(data))
    assert words == sorted(set(words))
    assert {"how", "many", "can", "green", "reach", "red", "which", "describe", "column", "sketch"} <= set(words)
    held_out = {w for n in NOTIONS.values() for s in n.synonyms if s.held_out for f in s.forms for w in f.split()}
    assert not {"boxes", "trail", "obstacles", "arrive", "blank", "hallway"} & set(words)
    assert held_out & set(words) <= {"at", "it", "out", "come", "across", "with"}  # only common words they share
    path = save_vocabulary(words, str(tmp_path), str(data), "train", 24)
    assert path.name == VOCABULARY_FILE and json.loads(path.read_text())["rows"] == 24
    assert load_vocabulary(str(tmp_path)) == set(words)
    assert load_vocabulary(str(tmp_path / "nowhere")) is None


def test_unseen_words_of_a_question(data):
    vocabulary = set(training_vocabulary(str(data)))
    assert unseen_words("Can green reach red?", vocabulary) == []
    assert unseen_words("Can the green BOX arrive at red? The box!", vocabulary) == ["box", "arrive"]
    assert unseen_words("How many orange or gray cells? 12?", vocabulary) == []  # palette colours and numbers
    assert unseen_words("How many pink cells?", vocabulary) == ["pink"]  # not a palette colour


def test_cli_writes_and_checks(data, tmp_path, capsys):
    assert main(["--data", str(data), "--out", str(tmp_path)]) == 0
    assert (tmp_path / VOCABULARY_FILE).is_file()
    assert main(["--out", str(tmp_path), "--question", "Is the green cell linked to red?"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == ["linked"]
    assert main(["--out", str(tmp_path / "none"), "--question", "x"]) == 2
    assert "no training_vocabulary.json" in capsys.readouterr().err
    (tmp_path / VOCABULARY_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a training vocabulary"):
        load_vocabulary(str(tmp_path))
