"""What the benchmark scripts share: a progress bar over the lab's progress events, and rewriting one marked README section."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def progress_bar():
    """(tqdm bar, on_event) for ``core.engine.evaluate.run_evaluation``'s progress events; close the bar when done."""
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {n:.0f}% {postfix}")

    def on_event(event: dict) -> None:
        bar.n = round(100 * event.get("fraction", 0), 1)
        bar.set_postfix_str(f"{event.get('variant', '')} {event.get('phase', '')}"[:60])
        bar.refresh()

    return bar, on_event


def write_readme_section(readme: Path, start: str, end: str, block: str, heading: str | None = None) -> bool:
    """Put ``block`` between the ``start`` and ``end`` markers of ``readme``. Without the markers, the section is appended
    under ``## heading``, or (no heading) nothing is written. Returns whether the README was written."""
    text = readme.read_text(encoding="utf-8")
    section = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: section, text, flags=re.S)
    elif heading:
        text += f"\n## {heading}\n\n{section}\n"
    else:
        return False
    readme.write_text(text, encoding="utf-8")
    return True
