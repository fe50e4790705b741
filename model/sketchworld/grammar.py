"""How sketch-world questions are worded: a per-family grammar of templates and synonyms (model/sketchworld/
templates.py), the canonical question, each row's paraphrase, and how many wordings each grammar gives.

    question("fold", {"moving": "left", "staying": "right"})          # the canonical question (template 0)
    p = pick("fold", random.Random(0), "test")                         # a Paraphrase: template, synonyms, kind
    wording("fold", p, {"moving": "left", "staying": "right"})         # its text
    python -m model.sketchworld.wordings                               # wordings per family, train vs held-out

A model trained on a handful of wordings learns those wordings, not the task (v5's text-only-CoT model fell from
51.3 % to 23.5 % on questions in words it never saw, issue 40). So every row carries a paraphrase drawn from the
family's grammar (`paraphrased_question`) and says what kind it is (`paraphrase_kind`):

- `seen`: a training template (not the canonical one) with training synonyms: a wording training may show, or an
  unseen combination of seen parts. Train rows are all of this kind.
- `held-out-template`: a template training never shows, filled with training synonyms: a new sentence shape.
- `held-out-synonym`: a training template with at least one notion filled with a held-out synonym: a new word.

Validation and test rows take the three kinds in equal shares, so the audit can report template, seen-paraphrase and
held-out-paraphrase accuracy separately (`python -m model.evaluate --questions template|seen|held-out`). Each choice
comes from the row's own seeded `random.Random`, so a row's wording does not depend on the rows before it.
"""

import itertools
import random
import re
from dataclasses import dataclass

from model.sketchworld.templates import FIELDS, NOTIONS, TEMPLATES

KINDS = ("seen", "held-out-template", "held-out-synonym")
SLOT = re.compile(r"\{(\w+)\}")
# slot name → (notion, form index); the names are unique over all notions and never a family's field
FORMS: dict[str, tuple[str, int]] = {
    form: (name, i) for name, n in NOTIONS.items() for i, form in enumerate(n.form_names)
}  # fmt: skip
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
DERIVED = {"amount_word", "unit"}  # `{amount}` spelled out; the cell notion in the number `{amount}` asks for


@dataclass(frozen=True)
class Paraphrase:
    template: int  # index into TEMPLATES[family]
    synonyms: tuple[tuple[str, int], ...]  # (notion, synonym index) per notion the template uses, sorted by notion
    kind: str  # one of KINDS

    @property
    def held_out(self) -> bool:
        return self.kind != "seen"


def template_notions(text: str) -> list[str]:
    """The notions a template's slots name, sorted (fields and derived slots excluded; `{unit}` is the cell)."""
    names = set()
    for slot in SLOT.findall(text):
        slot = slot[0].lower() + slot[1:]
        if slot == "unit":
            names.add("cell")
        elif slot in FORMS:
            names.add(FORMS[slot][0])
    return sorted(names)


def _check_fields(family: str, fields: dict) -> None:
    if family not in TEMPLATES:
        raise ValueError(f"unknown family {family!r}; families with a grammar: {', '.join(TEMPLATES)}")
    if set(fields) != set(FIELDS[family]):
        raise ValueError(f"{family} wordings take the fields {FIELDS[family]}, got {tuple(fields)}")


def fill(family: str, index: int, synonyms: dict[str, int], fields: dict) -> str:
    """Template `index` of `family` with one synonym per notion (`synonyms`: notion → index) and the fields."""
    _check_fields(family, fields)
    templates = TEMPLATES[family]
    if not 0 <= index < len(templates):
        raise ValueError(f"{family} has templates 0..{len(templates) - 1}, got {index}")

    def slot(match: re.Match) -> str:
        name = match.group(1)
        low = name[0].lower() + name[1:]
        if low in fields:
            text = str(fields[low])
        elif low == "amount_word":
            text = NUMBER_WORDS[int(fields["amount"])]
        elif low == "unit":
            text = NOTIONS["cell"].synonyms[synonyms["cell"]].forms[0 if int(fields["amount"]) == 1 else 1]
        else:
            notion, form = FORMS[low]
            text = NOTIONS[notion].synonyms[synonyms[notion]].forms[form]
        return text[0].upper() + text[1:] if name[0].isupper() else text

    return SLOT.sub(slot, templates[index].text)


def question(family: str, fields: dict) -> str:
    """The canonical question: template 0, every notion in its first (canonical) synonym."""
    _check_fields(family, fields)
    return fill(family, 0, {n: 0 for n in template_notions(TEMPLATES[family][0].text)}, fields)


def wording(family: str, paraphrase: Paraphrase, fields: dict) -> str:
    return fill(family, paraphrase.template, dict(paraphrase.synonyms), fields)


def _indices(notion: str, held_out: bool) -> list[int]:
    """Synonym indices of `notion` that are (held_out=True) or are not held out."""
    return [i for i, s in enumerate(NOTIONS[notion].synonyms) if s.held_out == held_out]


def _train_templates(family: str, canonical: bool = False) -> list[int]:
    return [i for i, t in enumerate(TEMPLATES[family]) if not t.held_out and (canonical or i > 0)]


def pick(family: str, rng: random.Random, split: str, kind: str | None = None) -> Paraphrase:
    """A row's paraphrase: `seen` for train rows; for other splits each of KINDS with probability 1/3, or `kind`
    when given (the shipped examples ask for each kind: model/sketchworld/examples.py)."""
    templates = TEMPLATES[family]
    if kind is not None and (kind not in KINDS or (split == "train" and kind != "seen")):
        raise ValueError(f"a {split} paraphrase cannot be of kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind is None:
        kind = "seen" if split == "train" else rng.choice(KINDS)
    if kind == "held-out-template":
        index = rng.choice([i for i, t in enumerate(templates) if t.held_out])
    elif kind == "held-out-synonym":
        with_held = [i for i in _train_templates(family)
                     if any(_indices(n, True) for n in template_notions(templates[i].text))]  # fmt: skip
        index = rng.choice(with_held)
    else:
        index = rng.choice(_train_templates(family))
    notions = template_notions(templates[index].text)
    synonyms = {n: rng.choice(_indices(n, False)) for n in notions}
    if kind == "held-out-synonym":
        notion = rng.choice([n for n in notions if _indices(n, True)])
        synonyms[notion] = rng.choice(_indices(notion, True))
    return Paraphrase(index, tuple(sorted(synonyms.items())), kind)


def expansions(family: str, index: int, fields: dict, held_out_synonyms: bool) -> set[str]:
    """Every text template `index` gives: with training synonyms only, or (held_out_synonyms) with at least one
    held-out synonym."""
    notions = template_notions(TEMPLATES[family][index].text)
    options = [_indices(n, False) + (_indices(n, True) if held_out_synonyms else []) for n in notions]
    out = set()
    for combo in itertools.product(*options):
        chosen = dict(zip(notions, combo))
        if held_out_synonyms and not any(NOTIONS[n].synonyms[i].held_out for n, i in chosen.items()):
            continue
        out.add(fill(family, index, chosen, fields))
    return out


def all_wordings(family: str, fields: dict) -> dict[str, set[str]]:
    """Every wording of the family for these fields, by what training shows: "train" (training templates, the
    canonical one included, with training synonyms), "held-out-template", "held-out-synonym"."""
    templates = TEMPLATES[family]
    train = set().union(*(expansions(family, i, fields, False) for i in _train_templates(family, canonical=True)))
    held_templates = [i for i, t in enumerate(templates) if t.held_out]
    held_template = set().union(*(expansions(family, i, fields, False) for i in held_templates))
    held_synonym = set().union(*(expansions(family, i, fields, True) for i in _train_templates(family, True)))
    held_synonym |= set().union(*(expansions(family, i, fields, True) for i in held_templates))
    return {"train": train, "held-out-template": held_template - train, "held-out-synonym": held_synonym - train}


def training_lines(family: str, fields: dict) -> list[str]:
    """Wordings that together use every training template and every training synonym of its notions (the
    tokenizer's corpus): template t with the j-th training synonym of each notion, j up to the longest list."""
    lines = []
    for index in _train_templates(family, canonical=True):
        notions = template_notions(TEMPLATES[family][index].text)
        lists = {n: _indices(n, False) for n in notions}
        for j in range(max((len(v) for v in lists.values()), default=1)):
            lines.append(fill(family, index, {n: v[j % len(v)] for n, v in lists.items()}, fields))
    return lines
