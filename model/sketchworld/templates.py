"""The words of sketch-world's question grammar: the notions people name in many ways, and each family's templates.

    python -m model.sketchworld.wordings         # how many wordings each family's grammar gives, train vs held-out

A template is a sentence with slots in braces: a family's fields (`{colour}`, `{moving}`, `{first}`, … as its
generator passes them; `{amount_word}` is `{amount}` spelled out) and the forms of notions (`{cells}` is the plural
form of the notion `cell`, filled with "cells", "squares", "tiles", …). A slot whose name starts with a capital
fills capitalised. One synonym is chosen per notion per wording, so "square" and "tiles" never mix in one question.
`{unit}` is the `cell` notion in the number `{amount}` asks for ("1 square", "2 squares").

Held out (validation and test only): whole templates (`held_out=True`) and some synonyms (`held(...)`), so the audit
can tell wordings seen in training from sentence shapes and words it never saw (model/sketchworld/grammar.py). A
held-out synonym's words appear nowhere in training text (no training template, synonym or trace uses them; tested).
Template 0 of each family is the canonical question, the `Question` column of every row, written exactly as in
earlier versions (the tests' independent checkers read it).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Synonym:
    forms: tuple[str, ...]  # one word or phrase per form of its notion, in the notion's form order
    held_out: bool = False  # only in validation and test rows


@dataclass(frozen=True)
class Notion:
    form_names: tuple[str, ...]  # the slot name of each form, e.g. ("cell", "cells"); unique over all notions
    synonyms: tuple[Synonym, ...]  # the first is the canonical word


@dataclass(frozen=True)
class Template:
    text: str  # slots in braces: fields of the family and forms of notions
    held_out: bool = False  # a sentence shape only validation and test rows take


def seen(*forms: str) -> Synonym:
    return Synonym(forms)


def held(*forms: str) -> Synonym:
    return Synonym(forms, held_out=True)


def notion(form_names: tuple[str, ...], *synonyms: Synonym) -> Notion:
    assert all(len(s.forms) == len(form_names) for s in synonyms), form_names
    return Notion(form_names, synonyms)


def t(*texts: str, held_out: bool = False) -> list[Template]:
    return [Template(text, held_out) for text in texts]


# ---------------------------------------------------------------- notions (shared by every family)

NOTIONS: dict[str, Notion] = {
    "cell": notion(("cell", "cells"), seen("cell", "cells"), seen("square", "squares"), seen("tile", "tiles"),
                   seen("spot", "spots"), held("box", "boxes")),
    "picture": notion(("picture",), seen("picture"), seen("image"), seen("grid"), held("drawing")),
    "count": notion(("count",), seen("count"), seen("add up"), held("tally")),
    "see": notion(("see",), seen("see"), seen("find"), held("make out")),
    "open": notion(("open",), seen("white"), seen("empty"), seen("open"), held("blank")),
    "wall": notion(("wall", "walls"), seen("wall", "walls"), seen("barrier", "barriers"),
                   held("obstacle", "obstacles")),
    "reach": notion(("reach", "reaches", "reaching"), seen("reach", "reaches", "reaching"),
                    seen("get to", "gets to", "getting to"), seen("travel to", "travels to", "travelling to"),
                    held("arrive at", "arrives at", "arriving at")),
    "reachable": notion(("reachable",), seen("reachable"), held("accessible")),
    "connected": notion(("connected",), seen("connected"), seen("joined"), held("linked")),
    "move": notion(("walk", "walking"), seen("move", "moving"), seen("step", "stepping"), seen("walk", "walking"),
                   seen("go", "going"), held("hop", "hopping")),
    "path": notion(("path",), seen("path"), seen("route"), seen("way"), held("trail")),
    "corridor": notion(("corridor", "corridors"), seen("corridor", "corridors"), seen("passage", "passages"),
                       seen("white path", "white paths"), held("hallway", "hallways")),
    "maze": notion(("maze",), seen("maze"), seen("labyrinth")),
    "marker": notion(("marker", "markers"), seen("marker", "markers"), seen("dot", "dots"),
                     seen("colour", "colours"), seen("color", "colors"), held("blob", "blobs")),
    "colour": notion(("colour_word",), seen("colour"), seen("color")),
    "pass": notion(("pass",), seen("pass"), seen("cross"), seen("meet"), seen("run into"), held("come across")),
    "lies": notion(("lies",), seen("lies"), seen("is"), seen("sits"), held("rests")),
    "fold": notion(("fold", "folding", "folded"), seen("fold", "folding", "folded"),
                   seen("flip", "flipping", "flipped"), held("bend", "bending", "bent")),
    "half": notion(("half",), seen("half"), seen("side"), held("part")),
    "paper": notion(("paper",), seen("paper"), seen("sheet"), seen("page"), held("card")),
    "land": notion(("land",), seen("land on"), seen("cover"), seen("end up on"), seen("hit"), seen("fall on"),
                   held("coincide with")),
    "mark": notion(("mark", "marks"), seen("mark", "marks"), seen("dot", "dots"), seen("cell", "cells"),
                   held("stamp", "stamps")),
    "slide": notion(("slide", "sliding", "slid"), seen("slide", "sliding", "slid"), seen("move", "moving", "moved"),
                    seen("shift", "shifting", "shifted"), seen("push", "pushing", "pushed"),
                    held("nudge", "nudging", "nudged")),
    "lay": notion(("lay",), seen("lay"), seen("put"), seen("place"), held("stack")),
    "tilt": notion(("tilt", "tilting", "tilted"), seen("tilt", "tilting", "tilted"), seen("lean", "leaning", "leaned"),
                   seen("tip", "tipping", "tipped"), held("incline", "inclining", "inclined")),
    "board": notion(("board",), seen("board"), seen("grid"), held("tray")),
    "piece": notion(("piece_noun", "pieces"), seen("piece", "pieces"), seen("ball", "balls"), seen("block", "blocks"),
                    held("marble", "marbles")),
    "hole": notion(("hole", "holes"), seen("hole", "holes"), seen("gap", "gaps"), held("pit", "pits")),
    "gray": notion(("gray",), seen("gray"), seen("grey")),
    "falls": notion(("falls", "fall", "fallen"), seen("falls", "fall", "fallen"), seen("drops", "drop", "dropped"),
                    seen("goes", "go", "gone"), held("tumbles", "tumble", "tumbled")),
    "column": notion(("column",), seen("column"), held("file")),
}  # fmt: skip

# ---------------------------------------------------------------- templates per family (index 0: the canonical one)

COUNT = t(
    "How many {colour} cells are in the picture?",
    "How many {colour} {cells} are there?",
    "How many {colour} {cells} can you {see} in the {picture}?",
    "{Count} the {colour} {cells}.",
    "{Count} the {colour} {cells} in the {picture}.",
    "What is the number of {colour} {cells} in the {picture}?",
    "Tell me how many {cells} are {colour}.",
    "How many {cells} in the {picture} are {colour}?",
    "Please {count} how many {colour} {cells} there are.",
    "The {picture} has some {colour} {cells}. How many?",
    "Can you {count} the {colour} {cells} for me?",
    "I need the number of {colour} {cells} in this {picture}.",
    "{colour}: how many {cells}?",
    "how many {colour}?",
    "how many {colour} {cells}",
    "number of {colour} {cells}?",
) + t(
    "Give the number of {colour} {cells}.",
    "{Colour} {cells}: how many?",
    "What's the total of {colour} {cells} in this {picture}?",
    "count {colour}",
    held_out=True,
)

CONNECT = t(
    "Moving up, down, left or right through white cells only, can green reach red?",
    "Can green {reach} red through {open} {cells}?",
    "Is there a {path} through {open} {cells} from green to red?",
    "{Walking} only through {open} {cells}, no diagonals, is red {reachable} from green?",
    "{Walls} are black. Can the green {cell} {reach} the red one?",
    "Can you {walk} from green to red on {open} {cells} without crossing a {wall}?",
    "Are green and red {connected} by {open} {cells}?",
    "Is red {reachable} from green if you can only {walk} up, down, left or right?",
    "Does a {path} through the {open} {cells} lead from green to red?",
    "Starting at green and {walking} through {open} {cells}, can you {reach} red?",
    "Without going through {walls}, is there a {path} between green and red?",
    "green to red?",
    "can green {reach} red",
    "{path} from green to red?",
) + t(
    "Is it possible to get from the green {cell} to the red {cell} without passing any {walls}?",
    "Going only sideways or up and down on {open} {cells}, does green connect to red?",
    "Red and green: {connected}?",
    "Tell me whether green can {reach} red.",
    held_out=True,
)

MAZE = t(
    "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?",
    "Which {colour_word} {lies} on the way from green to red: blue, yellow or purple?",
    "Which {marker} is on the {path} from green to red: blue, yellow or purple?",
    "{Walking} through the {maze} from green to red, which {colour_word} do you {pass}: blue, yellow or purple?",
    "On the {path} from green to red through the {maze}, which {marker} do you {pass}?",
    "Follow the {corridors} from green to red. Which {marker} {lies} on that {path}?",
    "Which of blue, yellow and purple {lies} on the {path} between green and red?",
    "Trace the {path} from green to red through the {maze}: which {marker} is on it?",
    "If you go from green to red through the {corridors}, which {marker} do you {pass}?",
    "Blue, yellow or purple: which one is on the {path} from green to red?",
    "green to red: blue, yellow or purple?",
    "which {marker} on the {path} from green to red?",
    "green to red, which {colour_word}?",
) + t(
    "Going from green to red along the {corridors}, which of blue, yellow and purple is on the {path}?",
    "Which {colour_word} is on the green-to-red {path}?",
    "Find the {path} from green to red. Which {marker} does it {pass}: blue, yellow or purple?",
    "blue/yellow/purple on the {path} green to red?",
    held_out=True,
)

FOLD = t(
    "Fold the {moving} half of the paper onto the {staying} half. How many red cells land on blue cells?",
    "{Fold} {moving} onto {staying}. How many red {marks} {land} blue ones?",
    "If the {moving} {half} is {folded} over onto the {staying} {half}, how many red {cells} {land} blue {cells}?",
    "{Folding} the {paper} {moving} over {staying}, how many reds {land} blues?",
    "How many red {cells} {land} blue {cells} when the {moving} {half} is {folded} onto the {staying} {half}?",
    "{Fold} the {paper} so the {moving} {half} lies on the {staying} {half}. How many red {marks} {land} blue?",
    "After you {fold} the {moving} {half} onto the {staying} {half}, how many red {cells} {land} blue {cells}?",
    "The {staying} {half} stays put and the {moving} {half} is {folded} onto it. How many red {marks} {land} blue "
    "{marks}?",
    "{Fold} the {moving} {half} onto the {staying} {half} and {count} the red {cells} on blue {cells}.",
    "fold {moving} onto {staying}: how many red on blue?",
    "{moving} onto {staying}, red on blue?",
) + t(
    "After folding {moving} onto {staying}, how many red {cells} sit on blue {cells}?",
    "The {moving} {half} {fold}s onto the {staying} {half}: how many red-on-blue overlaps are there?",
    "Say the {paper} is {folded} {moving} to {staying}. Count the red {marks} that {land} blue.",
    "{moving} over {staying}: red on blue count?",
    held_out=True,
)

SHIFT = t(
    "Slide the red marks of the first picture {amount} {unit} {direction} and lay them on the second picture. "
    "How many red marks land on blue cells?",
    "{Slide} the red {marks} {amount} {unit} {direction} onto the second {picture}. How many {land} blue {cells}?",
    "{Slide} the first {picture}'s red {marks} {direction} by {amount} and {lay} them on the second {picture}: "
    "how many {land} blue?",
    "If the red {marks} are {slid} {amount_word} {unit} {direction} onto {picture} two, how many {land} blue {cells}?",
    "How many red {marks} {land} blue {cells} after {sliding} them {amount} {unit} {direction} onto the second "
    "{picture}?",
    "{Lay} the red {marks} on the second {picture}, {slid} {amount_word} {unit} {direction}. How many {land} blue?",
    "Take the red {marks} from the first {picture}, {slide} them {direction} by {amount} {unit}, and {count} how many "
    "{land} blue {cells} in the second.",
    "After {sliding} the red {marks} {direction} {amount} {unit} onto the second {picture}, how many are on blue "
    "{cells}?",
    "red {amount} {direction} onto blue: how many?",
    "{slide} red {amount_word} {direction}, how many on blue?",
) + t(
    "Red {marks} move {direction} by {amount} {unit} onto the second image. Count those that {land} blue {cells}.",
    "Overlay the red {marks}, {slid} {amount_word} {unit} {direction}, on the second {picture}: how many are on blue?",
    "When the red {marks} go {amount} {unit} {direction} and onto the second {picture}, how many reds meet blues?",
    "red {direction} {amount}, on blue?",
    held_out=True,
)

SINK = t(
    "Tilt the board {first}, then {second}; pieces slide until blocked by walls or pieces, or fall into a gray hole. "
    "Which piece falls in?",
    "{Tilt} {first}, then {second}. Which {piece_noun} {falls} into a {hole}?",
    "The {board} is {tilted} {first} and then {second}. Which {piece_noun} ends up in a {gray} {hole}?",
    "After {tilting} the {board} {first} and then {second}, which {piece_noun} has {fallen} into a {hole}?",
    "{Pieces} slide when the {board} {tilt}s. {Tilt} {first}, then {second}: which one {falls} in a {hole}?",
    "If you {tilt} the {board} {first} and then {second}, which {piece_noun} {falls} into a {gray} {hole}?",
    "First {tilt} {first}, then {tilt} {second}. Which {colour_word} {piece_noun} {falls} in?",
    "Which {piece_noun} {falls} into a {hole} when the {board} is {tilted} {first} and after that {second}?",
    "{Tilt} the {board} {second} after {tilting} it {first}. Which {piece_noun} is lost down a {hole}?",
    "{first} then {second}: which {piece_noun} {falls} in?",
    "tilt {first}, {second}. which one {falls} in the {hole}?",
) + t(
    "Tip the {board} {first} and then {second}. Which {piece_noun} is lost down a {hole}?",
    "Which {piece_noun} {falls} into a {gray} {hole} if the {board} {tilt}s {first}, then {second}?",
    "{Tilting} {first} and then {second} makes one {piece_noun} {fall} in. Which?",
    "{first}, {second}: which {piece_noun} in a {hole}?",
    held_out=True,
)

TILT = t(
    "Tilt the board {first}, then {second}; pieces slide until blocked by walls or pieces. In which column does the "
    "{piece} piece end?",
    "{Tilt} {first}, then {second}. Which {column} does the {piece} {piece_noun} end in?",
    "After {tilting} the {board} {first} and then {second}, in which {column} is the {piece} {piece_noun}?",
    "The {board} is {tilted} {first}, then {second}. Which {column} does the {piece} {piece_noun} stop in?",
    "If you {tilt} the {board} {first} and then {second}, where does the {piece} {piece_noun} end up: which {column}?",
    "Which {column} is the {piece} {piece_noun} in after {tilting} {first} and then {second}?",
    "{Tilt} the {board} {first}, then {second}, and tell me the {column} of the {piece} {piece_noun}.",
    "tilt {first} then {second}, which {column} is {piece} in?",
    "{first} then {second}: {column} of the {piece} {piece_noun}?",
) + t(
    "Tip the {board} {first} then {second}: in which {column} does the {piece} {piece_noun} stop?",
    "Which {column} holds the {piece} {piece_noun} once the {board} has {tilted} {first} and then {second}?",
    held_out=True,
)

TEMPLATES: dict[str, list[Template]] = {
    "count": COUNT,
    "connect": CONNECT,
    "maze": MAZE,
    "fold": FOLD,
    "shift": SHIFT,
    "sink": SINK,
    "tilt": TILT,
    "connect16": CONNECT,  # the big boards ask the same questions
    "maze16": MAZE,
}

# the fields each family's generator passes (capitalised `{Field}` and `{amount_word}` are derived from them)
FIELDS: dict[str, tuple[str, ...]] = {
    "count": ("colour",),
    "connect": (),
    "maze": (),
    "fold": ("moving", "staying"),
    "shift": ("amount", "direction"),
    "sink": ("first", "second"),
    "tilt": ("first", "second", "piece"),
    "connect16": (),
    "maze16": (),
}
