"""bench/RESULTS.md: a benchmark replaces its own section (from its heading to the next ``## ``) or adds it."""
from __future__ import annotations

from pipeline.config import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "RESULTS.md"


def write_section(heading: str, body: str) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if heading in current:
        head, _, rest = current.partition(heading)
        following = rest.find("\n## ")
        current = head.rstrip("\n") + (rest[following:] if following >= 0 else "")
    RESULTS.write_text(current.rstrip("\n") + f"\n\n{heading}\n\n{body.strip()}\n", encoding="utf-8")
