"""Write a benchmark's markdown table into README.md between its markers.

Each benchmark owns a block `<!-- bench:NAME:start -->` … `<!-- bench:NAME:end -->` in README.md; the numbers in the
README only ever come from here.
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def write_section(name: str, markdown: str, readme: Path = README) -> bool:
    """Replace the text between the markers; False (and nothing written) when the markers are missing."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = readme.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        print(f"README.md has no {start} … {end} block; table not written")
        return False
    readme.write_text(pattern.sub(lambda _: f"{start}\n{markdown.strip()}\n{end}", text))
    print(f"wrote the {name} table into {readme}")
    return True


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
