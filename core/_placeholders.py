"""The README's Google Cloud placeholders (``PROJECT``, ``REGION``, ``gs://BUCKET/...``).

A dry run takes them as they are and prints its plan with them; a real run refuses them with
what to give instead, never with a hint that repeats the input.
"""

from __future__ import annotations

import re

# placeholder -> what to give instead: the real format, with an example
PLACEHOLDERS: dict[str, str] = {
    "PROJECT_ID": "a project id such as my-project-123",
    "PROJECT": "a project id such as my-project-123",
    "REGION": "a region such as us-central1 or europe-west4",
    "BUCKET": "a bucket name such as my-bucket (3 to 63 characters: lowercase letters, digits, "
              "- _ .)",
}
_WORD = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(PLACEHOLDERS) + r")(?![A-Za-z0-9_])")


def placeholders_in(*values: str | None) -> list[str]:
    """The placeholders that ``values`` hold, each once, in order of appearance."""
    found: list[str] = []
    for value in values:
        for word in _WORD.findall(value or ""):
            if word not in found:
                found.append(word)
    return found


def replace_hint(words: list[str]) -> str:
    """What to give instead of ``words``: 'replace REGION with a region such as ...'."""
    return "; ".join(f"replace {w} with {PLACEHOLDERS[w]}" for w in words)


def dry_run_note(words: list[str]) -> str:
    return (f"placeholders {', '.join(words)} kept as they are (a dry run); "
            f"before a real run, {replace_hint(words)}")
