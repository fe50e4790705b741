"""How each family's question is worded: the template every row's `Question` uses, and paraphrases of it.

    question("fold", moving="left", staying="right")           # the template wording (index 0)
    question("fold", 3, moving="left", staying="right")        # paraphrase 3
    pick_paraphrase("fold", rng, "test")                       # an index other than 0, held-out ones allowed

A model trained on one wording per family learns that wording, not the task: the demo trained on templates alone
fell from 60.5 % to 6.0 % on the same puzzles with reworded questions (../shared/FINDINGS.md, 6). So every row also
carries a paraphrase (`paraphrased_question`), which training shows in a share of the rows (`paraphrase_share`,
model/data/encoding.py), and the audit can ask instead of the template (`--questions paraphrased`). Wordings marked
`held_out` are only ever drawn for validation and test rows: they measure understanding of words never seen in
training, not recall of a second template.

Each wording is a format string over the fields its family's generator passes (`FIELDS`); the shortened wordings
people type (the README's "Which colour lies on the way: blue, yellow or purple?") are among the paraphrases.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Wording:
    text: str  # a format string over the family's fields
    held_out: bool = False  # only in validation and test rows


def _w(*texts: str, held_out: bool = False) -> list[Wording]:
    return [Wording(t, held_out) for t in texts]


# family → wordings; index 0 is the template (the `Question` column of every row, the examples, the app)
WORDINGS: dict[str, list[Wording]] = {
    "count": _w(
        "How many {colour} cells are in the picture?",
        "Count the {colour} cells.",
        "How many cells are {colour}?",
        "What is the number of {colour} cells in the picture?",
        "Tell me how many {colour} squares there are.",
    )
    + _w(
        "How many {colour} squares can you see?",
        "Give the number of {colour} cells.",
        "{Colour} cells: how many?",
        held_out=True,
    ),
    "connect": _w(
        "Moving up, down, left or right through white cells only, can green reach red?",
        "Can green get to red through white cells?",
        "Is there a path of white cells from green to red?",
        "Stepping only through white cells, no diagonals, is red reachable from green?",
        "Walls are black. Can the green cell reach the red one?",
    )
    + _w(
        "Is red reachable from green without crossing black walls?",
        "Can you walk from green to red on white cells?",
        "Does a white path connect green and red?",
        held_out=True,
    ),
    "maze": _w(
        "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?",
        "Which colour lies on the way: blue, yellow or purple?",
        "Which marker is on the path from green to red: blue, yellow or purple?",
        "Walking the maze from green to red, which colour do you pass: blue, yellow or purple?",
        "On the way from green to red through the maze, which marker do you meet?",
    )
    + _w(
        "Going from green to red along the corridors, which of blue, yellow and purple is on the route?",
        "Which colour is on the green-to-red path?",
        "Find the path from green to red. Which marker does it cross: blue, yellow or purple?",
        held_out=True,
    ),
    "fold": _w(
        "Fold the {moving} half of the paper onto the {staying} half. How many red cells land on blue cells?",
        "Fold {moving} onto {staying}. How many red marks meet blue ones?",
        "If the {moving} half is folded over onto the {staying} half, how many red cells cover blue cells?",
        "Folding the paper {moving} over {staying}, how many reds land on blues?",
        "How many red cells hit blue cells when the {moving} half folds onto the {staying} half?",
    )
    + _w(
        "Fold the paper so the {moving} half lies on the {staying} half. Count the red cells that land on blue.",
        "After folding {moving} onto {staying}, how many red cells sit on blue cells?",
        "The {moving} half folds onto the {staying} half: how many red-on-blue overlaps are there?",
        held_out=True,
    ),
    "shift": _w(
        "Slide the red marks of the first picture {amount} {cells} {direction} and lay them on the second picture. "
        "How many red marks land on blue cells?",
        "Move the red marks {amount} {cells} {direction} onto the second picture. How many hit blue cells?",
        "Shift the first picture's red marks {direction} by {amount} and place them on the second picture: how many "
        "land on blue?",
        "If the red marks slide {amount} {cells} {direction} onto picture two, how many cover blue cells?",
        "How many red marks end up on blue cells after sliding them {amount} {cells} {direction} onto the second "
        "picture?",
    )
    + _w(
        "Push the red marks {amount} {cells} {direction} and overlay them on the second picture. How many are on "
        "blue?",
        "Red marks move {direction} by {amount} {cells} onto the second image. Count those landing on blue cells.",
        "Slide red {amount} {cells} {direction} onto the second picture; how many reds meet blues?",
        held_out=True,
    ),
    "sink": _w(
        "Tilt the board {first}, then {second}; pieces slide until blocked by walls or pieces, or fall into a gray "
        "hole. Which piece falls in?",
        "Tilt {first}, then {second}. Which piece drops into a hole?",
        "The board is tipped {first} and then {second}. Which piece ends up in a gray hole?",
        "After tilting the board {first} and then {second}, which piece has fallen into a hole?",
        "Pieces slide when the board tilts. Tilt {first}, then {second}: which one falls in a hole?",
    )
    + _w(
        "Tip the board {first} and then {second}. Which piece is lost down a hole?",
        "Which piece falls into a gray hole if the board tilts {first}, then {second}?",
        "First tilt {first}, then tilt {second}. Which colour piece falls in?",
        held_out=True,
    ),
    "tilt": _w(
        "Tilt the board {first}, then {second}; pieces slide until blocked by walls or pieces. In which column does "
        "the {piece} piece end?",
        "Tilt {first}, then {second}. Which column does the {piece} piece end in?",
        "After tilting the board {first} and then {second}, in which column is the {piece} piece?",
    )
    + _w("Tip the board {first} then {second}: in which column does the {piece} piece stop?", held_out=True),
}

# the fields each family's wordings are formatted with (Colour: the colour with a capital, for a sentence start)
FIELDS = {
    "count": ("colour",),
    "connect": (),
    "maze": (),
    "fold": ("moving", "staying"),
    "shift": ("amount", "cells", "direction"),
    "sink": ("first", "second"),
    "tilt": ("first", "second", "piece"),
}


def question(family: str, index: int = 0, **fields) -> str:
    """The question of `family` in wording `index` (0: the template), filled with the generator's fields."""
    wordings = WORDINGS[family]
    if not 0 <= index < len(wordings):
        raise ValueError(f"{family} has wordings 0..{len(wordings) - 1}, got {index}")
    if set(fields) != set(FIELDS[family]):
        raise ValueError(f"{family} wordings take the fields {FIELDS[family]}, got {tuple(fields)}")
    extra = {k.capitalize(): str(v).capitalize() for k, v in fields.items()}
    return wordings[index].text.format(**fields, **extra)


def paraphrase_indices(family: str, split: str) -> list[int]:
    """The wordings a row of `split` may take as its paraphrase: never the template; held-out ones outside train."""
    wordings = WORDINGS[family]
    return [i for i in range(1, len(wordings)) if split != "train" or not wordings[i].held_out]


def pick_paraphrase(family: str, rng: random.Random, split: str) -> int:
    return rng.choice(paraphrase_indices(family, split))


def is_held_out(family: str, index: int) -> bool:
    return WORDINGS[family][index].held_out
