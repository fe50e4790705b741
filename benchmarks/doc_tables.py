"""Write a benchmark's markdown table into the documentation between its markers.

Each benchmark owns a block `<!-- bench:NAME:start -->` … `<!-- bench:NAME:end -->` in README.md or one of docs/*.md
(most live in docs/RESULTS.md, the backbone's in docs/GUIDE.md); the numbers there only ever come from here.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def write_section(name: str, markdown: str, documents: list[Path] | None = None) -> bool:
    """Replace the text between the markers in the document that holds them; False (nothing written) when none
    does."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    for document in documents or DOCUMENTS:
        text = document.read_text()
        if pattern.search(text):
            document.write_text(pattern.sub(lambda _: f"{start}\n{markdown.strip()}\n{end}", text))
            print(f"wrote the {name} table into {document}")
            return True
    print(f"no document has a {start} … {end} block; table not written")
    return False


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
