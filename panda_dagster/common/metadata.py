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


def combine_shard_metadata(by_shard: dict[str, dict]) -> dict:
    """One step that wrote several shards reports each shard's numbers plus the totals; a single shard
    keeps its own metadata unchanged."""
    if len(by_shard) == 1:
        return next(iter(by_shard.values()))
    from dagster import MetadataValue

    numeric = [k for k, v in next(iter(by_shard.values())).items() if isinstance(v, int | float) and not isinstance(v, bool)]
    numeric = [k for k in numeric if all(isinstance(m.get(k), int | float) for m in by_shard.values())]
    totals = {k: sum(m[k] for m in by_shard.values()) for k in numeric if k.startswith("n_") or k == "seconds"}
    rows = [{"shard": shard, **{k: m[k] for k in numeric}} for shard, m in by_shard.items()]
    return {"n_shards": len(by_shard), **totals, "per_shard": MetadataValue.md(markdown_table(rows, limit=50))}
