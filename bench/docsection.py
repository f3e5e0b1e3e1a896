"""Where the benchmark scripts write their figures: docs/benchmarks.md.

Each script owns the body of one `##` section, from its heading to the section's first
`###` subsection; those subsections (what the figures say) are written by hand and kept.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def replace(heading: str, body: str, *, before: str | None = None) -> None:
    """Put `body` under the `## heading` line, keeping its `###` subsections; a missing
    section is added in front of the `before` heading (or at the end)."""
    text = DOC.read_text()
    head = heading.rstrip("\n") + "\n"
    if head not in text:
        anchor = text.index(before) if before is not None else len(text)
        text = text[:anchor] + head + "\n" + text[anchor:]
    start = text.index(head) + len(head)
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end
    rest = text[start:end]
    keep = rest[rest.index("\n### ") :] if "\n### " in rest else "\n"
    DOC.write_text(text[:start] + "\n" + body.strip("\n") + "\n" + keep + text[end:])
