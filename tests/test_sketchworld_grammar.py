"""Tests for sketch-world's question grammar (model/sketchworld/grammar.py, templates.py): many wordings per family,
held-out templates and synonyms kept out of train rows and out of the tokenizer's corpus, every wording naming what
the puzzle needs, and the evaluator's question forms.

    python -m pytest -q tests/test_sketchworld_grammar.py
"""

import random
import re

import pytest

from model.data.zebra import Example, load_examples
from model.evaluation.cli import QUESTION_FORMS, reword
from model.sketchworld import FAMILIES, corpus_text, generate_instance, grammar, load_split, write_dataset
from model.sketchworld.families_logic import COUNT_COLORS, FOLDS
from model.sketchworld.grammar import KINDS, all_wordings, expansions, pick, template_notions
from model.sketchworld.templates import FIELDS, NOTIONS, TEMPLATES

NUMBER_WORDS = {"1": "one", "2": "two", "3": "three"}
MAZE_CHOICES = ("blue", "yellow", "purple")
# at least this many distinct wordings per family for one puzzle: training ones, and each held-out kind
MIN_WORDINGS = {"train": 90, "held-out-template": 20, "held-out-synonym": 100}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def held_out_synonyms() -> list[str]:
    return [form for n in NOTIONS.values() for s in n.synonyms if s.held_out for form in s.forms]


def fields_of(family: str, seed: str = "0") -> dict:
    return generate_instance(family, random.Random(f"grammar/{family}/{seed}")).question_fields


def test_every_family_has_a_grammar_whose_slots_resolve():
    assert set(TEMPLATES) == set(FAMILIES) == set(FIELDS)
    forms = [f for n in NOTIONS.values() for f in n.form_names]
    assert len(forms) == len(set(forms))  # a slot name names one form of one notion
    for family, templates in TEMPLATES.items():
        assert set(fields_of(family)) == set(FIELDS[family])  # the generator passes exactly the grammar's fields
        assert not set(FIELDS[family]) & set(forms)
        for template in templates:
            for slot in grammar.SLOT.findall(template.text):
                low = slot[0].lower() + slot[1:]
                assert low in FIELDS[family] or low in grammar.FORMS or low in grammar.DERIVED, (family, slot)
        assert not templates[0].held_out and any(t.held_out for t in templates)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_expands_to_many_wordings_and_held_out_ones_are_new(family):
    fields = fields_of(family)
    canonical = grammar.question(family, fields)
    assert generate_instance(family, random.Random(f"grammar/{family}/0")).question.endswith(" " + canonical)
    counts = all_wordings(family, fields)
    for kind, least in MIN_WORDINGS.items():
        assert len(counts[kind]) >= least, (family, kind, len(counts[kind]))
    train = counts["train"]
    for index, template in enumerate(TEMPLATES[family]):  # no held-out wording is also a training one
        if template.held_out:
            assert not expansions(family, index, fields, held_out_synonyms=False) & train, (family, index)
        assert not expansions(family, index, fields, held_out_synonyms=True) & train, (family, index)
        if index:
            assert canonical not in expansions(family, index, fields, False)  # a paraphrase differs from it
    for text in set().union(*counts.values()):
        assert "{" not in text and "}" not in text and len(text.split()) <= 40


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_wording_names_what_the_puzzle_needs(family):
    for seed in range(3):
        fields = fields_of(family, str(seed))
        for text in set().union(*all_wordings(family, fields).values()):
            low = words(text)
            for name, value in fields.items():
                value = str(value).lower()
                assert value in low or NUMBER_WORDS.get(value) in low, (family, name, text)
            if family.startswith(("connect", "maze")):
                assert {"green", "red"} <= low, text
            named = [c for c in MAZE_CHOICES if c in low]  # the choices are named all, or none (seen in the picture)
            if family.startswith("maze"):
                assert len(named) in (0, 3), text


def test_first_and_second_tilt_keep_their_order():
    fields = {"first": "up", "second": "left"}
    for text in set().union(*all_wordings("sink", fields).values()):
        up, left = (re.search(rf"\b{word}\b", text).start() for word in ("up", "left"))
        assert up < left or " after " in text, text  # "tilt left after tilting it up" is the one reversed shape


def test_pick_is_deterministic_and_train_rows_see_only_the_training_grammar():
    for family in FAMILIES:
        a = [pick(family, random.Random(f"p/{i}"), "test") for i in range(60)]
        assert a == [pick(family, random.Random(f"p/{i}"), "test") for i in range(60)]
        assert {p.kind for p in a} == set(KINDS)
        for p in a + [pick(family, random.Random(f"t/{i}"), "train") for i in range(60)]:
            template = TEMPLATES[family][p.template]
            held_synonym = any(NOTIONS[n].synonyms[i].held_out for n, i in p.synonyms)
            assert [n for n, _ in p.synonyms] == template_notions(template.text)
            assert p.template > 0 and p.kind == KINDS[template.held_out + 2 * held_synonym]
        assert all(pick(family, random.Random(f"t/{i}"), "train").kind == "seen" for i in range(60))


def test_pick_gives_the_kind_asked_for():
    """The shipped examples ask for each kind (model/sketchworld/examples.py); rows still draw theirs (above)."""
    for family in FAMILIES:
        for kind in KINDS:
            chosen = [pick(family, random.Random(f"k/{i}"), "test", kind) for i in range(10)]
            assert {p.kind for p in chosen} == {kind}
            template = TEMPLATES[family][chosen[0].template]
            assert template.held_out == (kind == "held-out-template")
    with pytest.raises(ValueError, match="a train paraphrase cannot be of kind 'held-out-synonym'"):
        pick("maze", random.Random(0), "train", "held-out-synonym")
    with pytest.raises(ValueError, match="cannot be of kind 'new'"):
        pick("maze", random.Random(0), "test", "new")


def held_out_texts(family: str) -> set[str]:
    """Every held-out wording of `family` over all its field values (count's colours, fold's folds, no fields)."""
    values = {"count": [{"colour": c} for c in COUNT_COLORS],
              "fold": [{"moving": m, "staying": s} for m, (_, s) in FOLDS.items()]}.get(family, [{}])  # fmt: skip
    out = set()
    for fields in values:
        counts = all_wordings(family, fields)
        out |= counts["held-out-template"] | counts["held-out-synonym"]
    return out


def test_rows_carry_their_paraphrase_kind_and_train_rows_no_held_out_wording(tmp_path):
    families = ["count", "connect", "maze16", "fold"]
    write_dataset(str(tmp_path), per_family=60, seed=0, families=families)
    held = {f: held_out_texts(f) for f in families}
    kinds = set()
    for split in ("train", "validation", "test"):
        rows = load_split(str(tmp_path), split)
        for row in rows:
            text = row["paraphrased_question"].split("<image_end> ")[-1]
            assert row["paraphrased_question"] != row["Question"]
            assert row["paraphrase_held_out"] == (row["paraphrase_kind"] != "seen")
            assert (text in held[row["family"]]) == row["paraphrase_held_out"], text
            if split == "train":
                assert row["paraphrase_kind"] == "seen"
                assert not words(text) & {w for s in held_out_synonyms() for w in words(s)} - corpus_words()
            else:
                kinds.add(row["paraphrase_kind"])
        examples, _ = load_examples(rows)  # the loader keeps the kind for the evaluator
        assert [e.paraphrase_kind for e in examples] == list(rows["paraphrase_kind"])
    assert kinds == set(KINDS)


_CORPUS: list[str] = []


def corpus_words() -> set[str]:
    if not _CORPUS:
        _CORPUS.extend(corpus_text())
    return set().union(*(words(line) for line in _CORPUS))


def test_corpus_has_the_training_grammar_and_none_of_the_held_out_words():
    vocabulary = corpus_words()
    lines = set(_CORPUS)
    for family in ("count", "connect", "maze", "fold", "shift", "sink", "connect16", "maze16"):
        fields = generate_instance(family, random.Random(f"corpus/0/{family}/0")).question_fields
        training = grammar.training_lines(family, fields)
        assert set(training) <= lines
        assert words(" ".join(all_wordings(family, fields)["train"])) <= vocabulary  # every training word
    for phrase in held_out_synonyms():  # every form of a held-out synonym has a word training never shows
        assert words(phrase) - vocabulary, phrase


def _example(kind: str, held: bool) -> Example:
    return Example(id=kind, question="template?", problem_images=[], segments=["x"], reasoning_images=[], answer="a",
                   paraphrased_question=f"{kind}?", paraphrase_held_out=held, paraphrase_kind=kind)  # fmt: skip


def test_evaluator_question_forms_pick_by_kind():
    examples = [_example("seen", False), _example("held-out-template", True), _example("held-out-synonym", True)]
    asked = {form: [e.question for e in reword(examples, form, "data")] for form in QUESTION_FORMS}
    assert asked["template"] == ["template?"] * 3
    assert asked["paraphrased"] == ["seen?", "held-out-template?", "held-out-synonym?"]
    assert asked["seen"] == ["seen?"] and asked["held-out"] == ["held-out-template?", "held-out-synonym?"]
    assert asked["held-out-template"] == ["held-out-template?"] and asked["held-out-synonym"] == ["held-out-synonym?"]
    with pytest.raises(ValueError, match="no paraphrased questions"):
        reword([Example("x", "q", [], ["x"], [], "a")], "seen", "old-data")


def test_bad_fields_and_templates_name_the_problem():
    with pytest.raises(ValueError, match="templates 0.."):
        grammar.fill("maze", 99, {}, {})
    with pytest.raises(ValueError, match="fields"):
        grammar.question("fold", {"moving": "left"})
    with pytest.raises(ValueError, match="unknown family"):
        grammar.question("nope", {})
