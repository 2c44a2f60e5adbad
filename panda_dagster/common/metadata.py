"""Helpers for the metadata every asset returns (markdown tables, histograms)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")[:120]


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, limit: int = 20) -> str:
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows not shown_")
    return "\n".join(lines)


def histogram(values: Iterable[object]) -> dict[str, int]:
    return dict(Counter(str(v) for v in values).most_common())
