from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass

import duckdb
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.records import QuarantineRecord
from panda_dagster.lib.schema import TABLES, Table


@dataclass
class Item:
    shard: str
    name: str
    score: float
    tags: list[str]
    note: str | None = None


ITEMS = Table("test_items", Item)
WITH_ITEMS = [*TABLES.values(), ITEMS]  # the project's tables plus this test's own


def _items(shard: str, n: int, offset: int = 0) -> list[Item]:
    return [Item(shard, f"{shard}-{i}", float(i + offset), [f"t{i}"]) for i in range(n)]


def test_replace_shard_is_idempotent_and_isolated(tmp_path):
    cat = Catalog(tmp_path, WITH_ITEMS)
    cat.replace_shard("test_items", "a", _items("a", 3))
    cat.replace_shard("test_items", "b", _items("b", 2))
    cat.replace_shard("test_items", "a", _items("a", 3))  # re-run: replaces, no duplicates
    counts = cat.query("SELECT shard, count(*) AS n FROM test_items GROUP BY shard ORDER BY shard")
    assert counts.to_dict("records") == [{"shard": "a", "n": 3}, {"shard": "b", "n": 2}]
    cat.replace_shard("test_items", "a", _items("a", 1, offset=10))
    df = cat.query("SELECT name, score, tags FROM test_items WHERE shard = 'a'")
    assert df["score"].tolist() == [10.0] and list(df["tags"][0]) == ["t0"]
    cat.replace_shard("test_items", "b", [])  # a shard that lost all rows has none left
    assert cat.query("SELECT count(*) AS n FROM test_items WHERE shard='b'")["n"][0] == 0
    assert cat.read_shard("test_items", "a")["name"].tolist() == ["a-0"]


def test_empty_table_is_queryable_and_rows_are_validated(tmp_path):
    cat = Catalog(tmp_path, WITH_ITEMS)
    cat.ensure_views([ITEMS])
    assert cat.query("SELECT count(*) AS n FROM test_items")["n"][0] == 0
    with pytest.raises(ValueError, match="shard"):
        cat.replace_shard("test_items", "a", _items("b", 1))
    with pytest.raises(TypeError):
        cat.replace_shard("test_items", "a", ["not a row"])
    with pytest.raises(ValueError):
        cat.replace_shard("test_items", "../escape", [])


def test_quarantine_is_replaced_per_stage(tmp_path):
    cat = Catalog(tmp_path)
    q = lambda stage, reason: QuarantineRecord("s1", "/x.mp4", stage, reason)  # noqa: E731
    cat.replace_shard("quarantine", "s1", [q("raw_videos", "bad"), q("raw_videos", "worse")], part="raw_videos")
    cat.replace_shard("quarantine", "s1", [q("clips", "too short")], part="clips")
    cat.replace_shard("quarantine", "s1", [q("raw_videos", "bad")], part="raw_videos")
    df = cat.query("SELECT stage, reason FROM quarantine ORDER BY stage")
    assert df.to_dict("records") == [{"stage": "clips", "reason": "too short"}, {"stage": "raw_videos", "reason": "bad"}]
    with pytest.raises(ValueError):
        cat.replace_shard("quarantine", "s1", [q("clips", "x")], part="raw_videos")


def _writer(home: str, shard: str, rounds: int) -> None:
    cat = Catalog(home, WITH_ITEMS)
    for r in range(rounds):
        cat.replace_shard("test_items", shard, _items(shard, 50, offset=r))


def test_parallel_writer_processes_and_concurrent_readers(tmp_path):
    """Separate processes write different shards at once while a reader holds the catalog open."""
    cat = Catalog(tmp_path, WITH_ITEMS)
    cat.ensure_views([ITEMS])
    reader = duckdb.connect(str(cat.path), read_only=True)  # held open during all writes
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), f"s{i}", 20)) for i in range(4)]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):
        n = reader.execute("SELECT count(*) FROM test_items").fetchone()[0]
        assert n % 50 == 0, "a reader saw a half-written shard"
        seen.add(n)
        time.sleep(0.01)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reader.execute("SELECT count(*) FROM test_items").fetchone()[0] == 200
    assert reader.execute("SELECT count(DISTINCT name) FROM test_items").fetchone()[0] == 200
    reader.close()
