"""Reading the final answer out of generated text, and normalising answers for exact match.

Sketch-world traces end with "The answer is X." (the same closing sentence in interleaved, text-only and direct
styles), so the answer is the text after the last "answer is". Normalisation lowercases, trims whitespace and
trailing punctuation, and drops a leading article, so "The answer is Yes." and "yes" match.
"""

import re

_ANSWER = re.compile(r"answer is\s*:?\s*(.+?)\s*(?:\.\s*)?$", re.IGNORECASE | re.DOTALL)


def normalize_answer(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"^(the|a|an)\s+", "", text)
    return text.strip(" \t\n.,;:!?\"'")


def extract_answer(text: str) -> str:
    """The normalised answer after the last 'answer is' of the text; '' when there is none."""
    cut = text.lower().rfind("answer is")
    if cut < 0:
        return ""
    tail = text[cut:].split("\n", 1)[0]
    match = _ANSWER.match(tail)
    return normalize_answer(match.group(1)) if match else ""
