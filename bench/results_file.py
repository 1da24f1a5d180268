"""Replace one benchmark's section of bench/RESULTS.md, leaving the others."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->``,
    appending the section when it is not there yet."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n{text.rstrip()}\n{end}"
    body = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if begin in body:
        body = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: section, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(body)
