"""The metadata catalog: per-shard Parquet files as the source of truth, DuckDB views on top.

Why this shape: DuckDB allows one writer *process* per database file, while shards materialize in
parallel processes. Each writer therefore only ever replaces its own Parquet file
(`lake/<table>/<part>/<shard>.parquet`) with an atomic rename, and `catalog.duckdb` holds nothing but
views over those files. Consequences:
- re-materializing a shard replaces its rows (one file per table, shard and part; never appended);
- any number of shards can be written at the same time without touching DuckDB's file lock;
- readers open `catalog.duckdb` read-only at any time and see whole files, never half-written ones.
The views are (re)created under an inter-process file lock only when a table is first seen or its
schema changes.

Tables are declared with a dataclass (`register_table`); rows are instances of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import tempfile
import time
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CATALOG_FILE = "catalog.duckdb"
LAKE_DIR = "lake"
SCHEMA_PART = "_schema"  # holds one empty file per table so a view exists before any shard does

_PA_TYPES: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
    dt.date: pa.date32(),
}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    row_type: type
    schema: pa.Schema
    # Column that names the part within a shard (e.g. quarantine rows are replaced per stage).
    part_column: str | None = None


_TABLES: dict[str, TableSpec] = {}


def _arrow_type(tp: object) -> pa.DataType:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union type {tp!r}")
        return _arrow_type(args[0])
    if origin in (list, Sequence, tuple):
        (item,) = typing.get_args(tp)[:1]
        return pa.list_(_arrow_type(item))
    if tp in _PA_TYPES:
        return _PA_TYPES[tp]
    raise TypeError(f"unsupported column type {tp!r}")


def schema_for(row_type: type) -> pa.Schema:
    hints = typing.get_type_hints(row_type)
    return pa.schema([pa.field(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(row_type)])


def register_table(name: str, row_type: type, part_column: str | None = None) -> TableSpec:
    """Declare a catalog table whose rows are `row_type` dataclass instances (must have `shard`)."""
    field_names = {f.name for f in dataclasses.fields(row_type)}
    if "shard" not in field_names:
        raise TypeError(f"table {name}: row type {row_type.__name__} needs a `shard` field")
    if part_column and part_column not in field_names:
        raise TypeError(f"table {name}: part column {part_column!r} is not a field")
    spec = TableSpec(name, row_type, schema_for(row_type), part_column)
    existing = _TABLES.get(name)
    if existing and existing.schema != spec.schema:
        raise ValueError(f"table {name} registered twice with different schemas")
    _TABLES[name] = spec
    return spec


def table_spec(name: str) -> TableSpec:
    try:
        return _TABLES[name]
    except KeyError:
        raise KeyError(f"unknown catalog table {name!r}; known: {sorted(_TABLES)}") from None


def registered_tables() -> dict[str, TableSpec]:
    return dict(_TABLES)


def _safe_name(value: str) -> str:
    if not value or "/" in value or value.startswith(".") or "\\" in value:
        raise ValueError(f"invalid shard/part name {value!r}")
    return value


def _atomic_write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rows_to_arrow(spec: TableSpec, rows: Iterable[object]) -> pa.Table:
    columns: dict[str, list] = {f.name: [] for f in spec.schema}
    for row in rows:
        if not isinstance(row, spec.row_type):
            raise TypeError(f"table {spec.name} expects {spec.row_type.__name__}, got {type(row).__name__}")
        for name in columns:
            columns[name].append(getattr(row, name))
    return pa.Table.from_pydict(columns, schema=spec.schema)


class Catalog:
    """Read/write access to the catalog under `home` (usually PANDA_HOME)."""

    def __init__(self, home: Path | str):
        self.home = Path(home).resolve()
        self.lake = self.home / LAKE_DIR
        self.path = self.home / CATALOG_FILE

    # ---- writing -------------------------------------------------------------------------------
    def replace_shard(self, table: str, shard: str, rows: Iterable[object], part: str | None = None) -> int:
        """Replace every row of `table` for `shard` (and `part`, for tables split by part). Idempotent."""
        spec = table_spec(table)
        if (part is None) != (spec.part_column is None):
            raise ValueError(f"table {table}: part must be given iff the table has a part column")
        rows = list(rows)
        for row in rows:
            if not isinstance(row, spec.row_type):
                raise TypeError(f"table {table} expects {spec.row_type.__name__} rows, got {type(row).__name__}")
            if row.shard != shard:
                raise ValueError(f"row for shard {row.shard!r} passed to replace_shard({table}, {shard!r})")
            if part is not None and getattr(row, spec.part_column) != part:
                raise ValueError(f"row with {spec.part_column}={getattr(row, spec.part_column)!r} in part {part!r}")
        arrow = rows_to_arrow(spec, rows)
        part_dir = _safe_name(part) if part is not None else "all"
        _atomic_write_parquet(arrow, self.lake / table / part_dir / f"{_safe_name(shard)}.parquet")
        self.ensure_views([spec])
        return len(rows)

    def delete_shard(self, table: str, shard: str) -> None:
        for path in (self.lake / table).glob(f"*/{_safe_name(shard)}.parquet"):
            path.unlink(missing_ok=True)

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".catalog.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _views_state_path(self) -> Path:
        return self.lake / "_views.json"

    def ensure_views(self, specs: Iterable[TableSpec] | None = None) -> None:
        """Create or refresh the DuckDB views for tables that are new or whose schema changed."""
        specs = list(specs if specs is not None else _TABLES.values())
        wanted = {s.name: s.schema.to_string() for s in specs}
        state_path = self._views_state_path()
        if self.path.exists() and state_path.exists():
            state = json.loads(state_path.read_text())
            if all(state.get(n) == sig for n, sig in wanted.items()):
                return
        with self._schema_lock():
            state = json.loads(state_path.read_text()) if state_path.exists() else {}
            todo = [s for s in specs if state.get(s.name) != wanted[s.name] or not self.path.exists()]
            if not todo:
                return
            for spec in todo:
                empty = pa.Table.from_pylist([], schema=spec.schema)
                _atomic_write_parquet(empty, self.lake / spec.name / SCHEMA_PART / "schema.parquet")
            with self._connect_rw() as con:
                for spec in todo:
                    glob = (self.lake / spec.name / "*" / "*.parquet").as_posix().replace("'", "''")
                    con.execute(
                        f'CREATE OR REPLACE VIEW "{spec.name}" AS SELECT * '
                        f"FROM read_parquet('{glob}', union_by_name = true)"
                    )
                    state[spec.name] = wanted[spec.name]
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            os.replace(tmp, state_path)

    @contextmanager
    def _connect_rw(self, timeout_s: float = 120.0):
        """Read-write connection, retried while read-only readers hold the file."""
        import duckdb

        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    # ---- reading -------------------------------------------------------------------------------
    def connect(self):
        """Read-only DuckDB connection to the catalog (safe while shards are being written)."""
        import duckdb

        self.ensure_views()
        return duckdb.connect(str(self.path), read_only=True)

    def query(self, sql: str, params: Sequence[object] | None = None):
        """Run SQL against the catalog and return a pandas DataFrame."""
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def read_shard(self, table: str, shard: str):
        """Rows of one shard straight from its Parquet files (no DuckDB involved): a DataFrame."""
        spec = table_spec(table)
        files = sorted((self.lake / table).glob(f"*/{_safe_name(shard)}.parquet"))
        if not files:
            return pa.Table.from_pylist([], schema=spec.schema).to_pandas()
        return pa.concat_tables([pq.read_table(f, schema=spec.schema) for f in files]).to_pandas()

    def shards(self, table: str) -> list[str]:
        return sorted({p.stem for p in (self.lake / table).glob("*/*.parquet") if p.parent.name != SCHEMA_PART})
