"""How many wordings each family's question grammar gives (model/sketchworld/grammar.py), as a Markdown table:

    python -m model.sketchworld.wordings

Per family: templates (held out), then distinct wordings for one sample of its fields: the training ones (training
templates, the canonical one included, with training synonyms), those of held-out templates with training synonyms,
and those with at least one held-out synonym. Shift's count is per amount and direction (its `{amount}` is also
spelled out, and the cell word follows the number).
"""

import argparse

from model.sketchworld.grammar import all_wordings
from model.sketchworld.templates import TEMPLATES

SAMPLE_FIELDS = {
    "count": {"colour": "red"},
    "fold": {"moving": "left", "staying": "right"},
    "shift": {"amount": 2, "direction": "up"},
    "sink": {"first": "up", "second": "left"},
    "tilt": {"first": "down", "second": "right", "piece": "blue"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model.sketchworld.wordings", description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    print("| family | templates (held out) | train wordings | held-out-template | held-out-synonym |")
    print("|---|---:|---:|---:|---:|")
    for family, templates in TEMPLATES.items():
        counts = all_wordings(family, SAMPLE_FIELDS.get(family, {}))
        held = sum(t.held_out for t in templates)
        numbers = [len(counts[k]) for k in ("train", "held-out-template", "held-out-synonym")]
        print(f"| {family} | {len(templates)} ({held}) | " + " | ".join(map(str, numbers)) + " |")


if __name__ == "__main__":
    main()
