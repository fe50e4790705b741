"""Write the example puzzles shipped in assets/examples/ (used by the README, the CLI and the app's example picker).

    python -m model.sketchworld.examples --out assets/examples --per-family 2 --seed 1234

Each example is a PNG per problem image and per true intermediate image (for `oracle` mode and for comparison in the
app), plus one `examples.json` listing id, family, question (the canonical wording, placeholders removed), its
`paraphrased_question` and `paraphrase_kind` (as a dataset row has them: model/sketchworld/grammar.py), answer,
choices and file names. The paraphrase kinds are taken in turn over the families and their puzzles
(`EXAMPLE_KINDS`), so that the examples ask in a wording training shows (`seen`), in a sentence shape it never shows
(`held-out-template`) and with a word it never shows (`held-out-synonym`); the app offers each puzzle in both
wordings. The seed stream differs from the dataset splits' (`examples/...`), so these are not training instances.
Pictures of examples no longer listed (an earlier family list's) are removed.
"""

import argparse
import json
import random
import re
from pathlib import Path

from model.sketchworld import DEFAULT_FAMILIES, generate_instance, grammar

EXAMPLE_KINDS = grammar.KINDS  # the paraphrase kind of puzzle i of family f: EXAMPLE_KINDS[(f + i) % 3]


def write_examples(out_dir: str, per_family: int = 2, seed: int = 1234) -> list[dict]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for f, family in enumerate(DEFAULT_FAMILIES):
        for i in range(per_family):
            inst = generate_instance(family, random.Random(f"examples/{seed}/{family}/{i}"))
            kind = EXAMPLE_KINDS[(f + i) % len(EXAMPLE_KINDS)]  # its own stream: the puzzles stay as they were
            paraphrase = grammar.pick(family, random.Random(f"examples/{seed}/{family}/{i}/wording"), "test", kind)
            example_id = f"{family}-{i + 1}"
            problem = [f"{example_id}-problem-{k + 1}.png" for k in range(len(inst.problem_images))]
            reasoning = [f"{example_id}-sketch-{k + 1}.png" for k in range(len(inst.reasoning_images))]
            for name, img in zip(problem + reasoning, inst.problem_images + inst.reasoning_images):
                img.save(out / name, optimize=False)
            question = re.sub(r"\s*<image_start>\[[a-z_0-9]+\]<image_end>\s*", " ", inst.question).strip()
            records.append(
                dict(
                    id=example_id,
                    family=family,
                    question=question,
                    paraphrased_question=grammar.wording(family, paraphrase, inst.question_fields),
                    paraphrase_kind=paraphrase.kind,
                    answer=inst.answer,
                    choices=list(inst.choices),
                    problem_images=problem,
                    reasoning_images=reasoning,
                    trace=inst.trace,
                )
            )
    (out / "examples.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    written = {name for r in records for name in r["problem_images"] + r["reasoning_images"]}
    for stale in [*out.glob("*-problem-*.png"), *out.glob("*-sketch-*.png")]:  # an earlier family list's pictures
        if stale.name not in written:
            stale.unlink()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m model.sketchworld.examples")
    parser.add_argument("--out", default="assets/examples")
    parser.add_argument("--per-family", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    records = write_examples(args.out, args.per_family, args.seed)
    print(f"wrote {len(records)} examples to {args.out}")


if __name__ == "__main__":
    main()
