"""The metadata catalog: per-shard Parquet files as the source of truth, DuckDB views on top.

Why this shape: DuckDB allows one writer *process* per database file, while shards materialize in
parallel processes. Each writer therefore only ever replaces its own Parquet file
(`lake/<table>/<part>/<shard>.parquet`) with an atomic rename, and `catalog.duckdb` holds nothing but
views over those files. Consequences:
- re-materializing a shard replaces its rows (one file per table, shard and part; never appended);
- any number of shards can be written at the same time without touching DuckDB's file lock;
- readers open `catalog.duckdb` read-only at any time and see whole files, never half-written ones.
The views are (re)created under an inter-process file lock only when a table is first seen or its
schema changes. With PANDA_S3_BUCKET set the files live in the bucket, one object per file, and
`lake/` is a local mirror refreshed by ETag before reading (`lib/lake.py`): no shared disk needed.

Every table is declared in `lib/schema.py` (name, row dataclass, part column); rows are instances of
its dataclass. `rows` gives them back typed, `read_shard` as a DataFrame, `query` runs SQL over the views.
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
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from panda_dagster.lib.lake import LocalLake, S3Lake, lake_from_env
from panda_dagster.lib.schema import TABLES, Table
from panda_dagster.lib.storage import shared_file_mode

CATALOG_FILE = "catalog.duckdb"
LAKE_DIR = "lake"
CHECKPOINT_PART = "_checkpoint"
SCHEMA_PART = "_schema"  # holds one empty file per table so a view exists before any shard does
UNSPLIT_PART = "all"  # the folder of a table without a part column

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
    """How a declared table (`schema.Table`) is stored: its Arrow schema and which columns a row yields."""

    name: str
    row_type: type
    schema: pa.Schema
    part_column: str | None
    # (field name, nested dataclass or None, its column names): a dataclass-typed field is stored flat.
    layout: tuple[tuple[str, type | None, tuple[str, ...]], ...]

    def columns_of(self, row: object) -> Iterator[tuple[str, object]]:
        for name, nested, columns in self.layout:
            value = getattr(row, name)
            if nested is None:
                yield name, value
            else:
                for column in columns:
                    yield column, getattr(value, column)

    def row_from(self, record: dict[str, object]) -> object:
        values = {}
        for name, nested, columns in self.layout:
            if nested is None:
                values[name] = record[name]
            else:
                values[name] = nested(**{c: record[c] for c in columns})
        return self.row_type(**values)


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


def table_spec_for(table: Table) -> TableSpec:
    """Check a declared table and work out its columns (nested dataclass fields flattened)."""
    hints = typing.get_type_hints(table.row_type)
    fields: list[pa.Field] = []
    layout = []
    for f in dataclasses.fields(table.row_type):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sub_hints = typing.get_type_hints(tp)
            subs = dataclasses.fields(tp)
            fields += [pa.field(s.name, _arrow_type(sub_hints[s.name])) for s in subs]
            layout.append((f.name, tp, tuple(s.name for s in subs)))
        else:
            fields.append(pa.field(f.name, _arrow_type(tp)))
            layout.append((f.name, None, (f.name,)))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise TypeError(f"table {table.name}: repeated column names in {names}")
    top_level = {f.name for f in dataclasses.fields(table.row_type)}
    if "shard" not in top_level:
        raise TypeError(f"table {table.name}: row type {table.row_type.__name__} needs a `shard` field")
    if table.part_column and table.part_column not in top_level:
        raise TypeError(f"table {table.name}: part column {table.part_column!r} is not a field")
    return TableSpec(table.name, table.row_type, pa.schema(fields), table.part_column, tuple(layout))


@lru_cache(maxsize=None)
def _spec(table: Table) -> TableSpec:
    return table_spec_for(table)


def _safe_name(value: str) -> str:
    if not value or "/" in value or value.startswith(".") or "\\" in value:
        raise ValueError(f"invalid shard/part name {value!r}")
    return value


def _atomic_write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, shared_file_mode())  # mkstemp's 0600 would hide the catalog from other users
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
        for name, value in spec.columns_of(row):
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=spec.schema)


class Catalog:
    """Read/write access to the catalog under `home` (usually PANDA_HOME)."""

    def __init__(self, home: Path | str, tables: Iterable[Table] | None = None,
                 lake: LocalLake | S3Lake | None = None):
        """`tables`: the tables this catalog knows; default every table of `lib/schema.py`.
        `lake`: where the Parquet files really live (`lib/lake.py`); default from the environment:
        an S3 bucket when PANDA_S3_BUCKET is set (`home/lake` is then a mirror), else `home/lake`."""
        self.home = Path(home).resolve()
        self.lake = self.home / LAKE_DIR
        self.lake_store = lake if lake is not None else lake_from_env(self.lake)
        self.path = self.home / CATALOG_FILE
        declared = TABLES.values() if tables is None else tables
        self.tables: dict[str, TableSpec] = {t.name: _spec(t) for t in declared}

    def spec(self, table: str) -> TableSpec:
        """The declared table `table`; raises KeyError naming the declared ones otherwise."""
        try:
            return self.tables[table]
        except KeyError:
            raise KeyError(f"table {table!r} is not declared in panda_dagster/lib/schema.py "
                           f"(declared: {', '.join(sorted(self.tables))})") from None

    # ---- writing -------------------------------------------------------------------------------
    def replace_shard(self, table: str, shard: str, rows: Iterable[object], part: str | None = None) -> int:
        """Replace every row of `table` for `shard` (and `part`, for tables split by part). Idempotent."""
        spec = self.spec(table)
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
        # Part values may be model ids ("org/name"): the folder name only needs to be unique and safe.
        part_dir = _safe_name(part.replace("/", "--")) if part is not None else UNSPLIT_PART
        if part is not None and part_dir in (UNSPLIT_PART, SCHEMA_PART, CHECKPOINT_PART):
            raise ValueError(f"table {table}: part name {part!r} is reserved")
        path = self.lake / table / part_dir / f"{_safe_name(shard)}.parquet"
        with self.lake_store.writing(path):
            _atomic_write_parquet(arrow, path)
        self._drop_stale_layout(spec, shard)
        self.ensure_views([spec])
        return len(rows)

    def _drop_stale_layout(self, spec: TableSpec, shard: str) -> None:
        """A table that gained (or lost) its part column since the shard was last written keeps a file in
        the old layout (`all/` vs per-part folders); it would be read twice, so it goes."""
        if spec.part_column is not None:
            stale = self.lake / spec.name / UNSPLIT_PART / f"{shard}.parquet"
            if stale.exists() or self.lake_store.kind != "local":
                self.lake_store.delete(stale)
            return
        for path in (self.lake / spec.name).glob(f"*/{shard}.parquet"):
            if path.parent.name not in (UNSPLIT_PART, SCHEMA_PART):
                self.lake_store.delete(path)

    # ---- checkpoints: rows of a shard that a run still at work has finished ---------------------
    # Under lake/<table>/_checkpoint/<shard>/ (one level deeper than the table's files, so neither the
    # DuckDB views nor `rows` see them); in the bucket too when the lake is S3, so a retry on another
    # machine finds them.
    def add_checkpoint(self, table: str, shard: str, rows: Iterable[object]) -> None:
        """Save `rows` of `table` that the current run of `shard` has finished: one more file, written
        atomically. A run after a crash reads them back (`checkpoint_rows`) instead of redoing that work;
        `clear_checkpoint` drops them once the shard's rows are replaced."""
        rows = list(rows)
        if not rows:
            return
        spec = self.spec(table)
        path = self._checkpoint_dir(table, shard) / f"{time.time_ns():020d}-{os.getpid()}.parquet"
        with self.lake_store.writing(path):
            _atomic_write_parquet(rows_to_arrow(spec, rows), path)

    def checkpoint_rows(self, table: str, shard: str) -> list:
        """Rows saved by `add_checkpoint` for `shard` since its last `clear_checkpoint`, oldest first."""
        spec = self.spec(table)
        self.lake_store.refresh(table)
        return [spec.row_from(record) for path in sorted(self._checkpoint_dir(table, shard).glob("*.parquet"))
                for record in pq.read_table(path, schema=spec.schema).to_pylist()]

    def clear_checkpoint(self, table: str, shard: str) -> None:
        for path in self._checkpoint_dir(table, shard).glob("*.parquet"):
            self.lake_store.delete(path)

    def _checkpoint_dir(self, table: str, shard: str) -> Path:
        return self.lake / table / CHECKPOINT_PART / _safe_name(shard)

    def delete_shard(self, table: str, shard: str) -> None:
        self.spec(table)
        self.lake_store.refresh(table)
        for path in (self.lake / table).glob(f"*/{_safe_name(shard)}.parquet"):
            if path.parent.name != SCHEMA_PART:
                self.lake_store.delete(path)

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

    def ensure_views(self, tables: Iterable[Table | TableSpec | str] | None = None) -> None:
        """Create or refresh the DuckDB views for tables that are new or whose schema changed."""
        names = [t if isinstance(t, str) else t.name for t in tables] if tables is not None else self.tables
        specs = [self.spec(n) for n in names]
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
    def connect(self, timeout_s: float = 120.0):
        """Read-only DuckDB connection to the catalog (safe while shards are being written).

        DuckDB refuses a read-only open while another process holds the file read-write (a writer
        (re)creating views, for a moment); the open is retried until `timeout_s`, so readers never
        fail on that lock."""
        import duckdb

        self.lake_store.refresh()
        self.ensure_views()
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=True)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def query(self, sql: str, params: Sequence[object] | None = None):
        """Run SQL against the catalog and return a pandas DataFrame."""
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def _shard_files(self, table: str, shard: str) -> list[Path]:
        self.lake_store.refresh(table)
        return sorted((self.lake / table).glob(f"*/{_safe_name(shard)}.parquet"))

    def _read_arrow(self, spec: TableSpec, shard: str) -> pa.Table:
        files = self._shard_files(spec.name, shard)
        if not files:
            return pa.Table.from_pylist([], schema=spec.schema)
        return pa.concat_tables([pq.read_table(f, schema=spec.schema) for f in files])

    def read_shard(self, table: str, shard: str):
        """Rows of one shard straight from its Parquet files (no DuckDB involved): a DataFrame, for analytics."""
        return self._read_arrow(self.spec(table), shard).to_pandas()

    def rows(self, table: str, shard: str) -> list:
        """Rows of one shard as instances of the table's row dataclass (from Parquet, no DuckDB).

        Order: part by part (sorted part names), then as written. Nulls come back as None, list
        columns as lists, timestamps as timezone-aware datetimes.
        """
        spec = self.spec(table)
        return [spec.row_from(record) for record in self._read_arrow(spec, shard).to_pylist()]

    def shards(self, table: str) -> list[str]:
        """Shards that have a file of `table` (also the ones whose rows are all gone)."""
        self.spec(table)
        self.lake_store.refresh(table)
        return sorted({p.stem for p in (self.lake / table).glob("*/*.parquet") if p.parent.name != SCHEMA_PART})
