"""Delta Lake I/O: the only module that reads or writes tables. Jobs name tables, never paths."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from delta.exceptions import (ConcurrentAppendException, ConcurrentDeleteDeleteException,
                              ConcurrentDeleteReadException, ConcurrentTransactionException,
                              ConcurrentWriteException, DeltaConcurrentModificationException,
                              MetadataChangedException, ProtocolChangedException)
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from c360 import profile
from c360.catalog import TableSpec, load_catalog
from c360.config import Config
from c360.run import RunContext

log = logging.getLogger(__name__)
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


class ContractError(ValueError):
    """A DataFrame does not match the column contract its table declares in the catalog."""


class ConcurrentWriteError(RuntimeError):
    """Another run committed to the same table first; this run committed nothing and can simply rerun."""


@dataclass(frozen=True)
class WriteStats:
    """What one write did: the version it made (None when nothing changed), the version its commit was
    based on (Delta's readVersion; None when it created the table) and row counts."""

    table: str
    version: int | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    read_version: int | None = None

    @property
    def changed(self) -> bool:
        return self.version is not None


def spec(cfg: Config, name: str) -> TableSpec:
    """The catalog entry of table `name`."""
    return load_catalog(cfg).table(name)


def location(cfg: Config, name: str) -> str:
    """Storage path of table `name`."""
    return spec(cfg, name).location(cfg)


def schema_of(table: TableSpec) -> T.StructType:
    """The Spark schema a table's column contract declares."""
    return T.StructType([
        T.StructField(col, T.DataType.fromDDL(type_name), nullable=True)
        for col, type_name in table.columns.items()
    ])


def check_contract(df: DataFrame, table: TableSpec) -> DataFrame:
    """Return `df` if its columns match the table's contract in name, order and type, else raise."""
    expected = [(f.name, f.dataType.simpleString()) for f in schema_of(table).fields]
    actual = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    if expected != actual:
        missing = [c for c in expected if c not in actual]
        extra = [c for c in actual if c not in expected]
        raise ContractError(
            f"{table.name}: DataFrame does not match the catalog contract; "
            f"missing or mistyped {missing}, unexpected {extra}"
        )
    return df


def exists(spark: SparkSession, cfg: Config, name: str) -> bool:
    """Whether table `name` has been created."""
    return DeltaTable.isDeltaTable(spark, location(cfg, name))


def read(spark: SparkSession, cfg: Config, name: str, version: int | None = None,
         timestamp: str | dt.datetime | None = None) -> DataFrame:
    """Read table `name`, optionally as it was at a version or a timestamp (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    elif timestamp is not None:
        reader = reader.option("timestampAsOf", str(timestamp))
    return reader.load(location(cfg, name))


def history(spark: SparkSession, cfg: Config, name: str, limit: int | None = None) -> DataFrame:
    """Delta history of `name`, newest first, with the run metadata of each commit."""
    table = DeltaTable.forPath(spark, location(cfg, name))
    return table.history(limit) if limit else table.history()


def _log(cfg: Config, name: str):
    """The table's Delta log read with delta-rs: a snapshot's version, properties and commits in milliseconds,
    where Spark's DESCRIBE HISTORY and DETAIL each run a query (measured: 0.15-0.9 s per call)."""
    from c360 import lineage

    return lineage.open_table(cfg, name)


def current_version(spark: SparkSession, cfg: Config, name: str) -> int | None:
    """Latest version of `name`, or None if the table does not exist yet."""
    if not exists(spark, cfg, name):
        return None
    return int(_log(cfg, name).version())


def version_stamp(spark: SparkSession, cfg: Config, name: str, version: int | None = None) -> dict | None:
    """Location, number and commit time of `name`'s latest version, or of `version` (None if no table): it
    names the content exactly, even across a table that was removed and created again."""
    if not exists(spark, cfg, name):
        return None
    table = _log(cfg, name)
    latest = table.version()
    wanted = latest if version is None else int(version)
    commit = next((c for c in table.history(latest - wanted + 1) if c["version"] == wanted), None)
    if commit is None:
        raise ValueError(f"{name}: version {wanted} is not in its Delta log (latest {latest})")
    stamp = dt.datetime.fromtimestamp(commit["timestamp"] / 1000, dt.timezone.utc).isoformat()
    return {"location": location(cfg, name), "version": wanted, "timestamp": stamp}


@contextlib.contextmanager
def commit_metadata(spark: SparkSession, run: RunContext) -> Iterator[None]:
    """Tag every Delta commit made inside the block with the run's job, run id and git sha."""
    previous = spark.conf.get(_USER_METADATA, None)
    spark.conf.set(_USER_METADATA, run.commit_metadata())
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_USER_METADATA)
        else:
            spark.conf.set(_USER_METADATA, previous)


# Delta collects min/max statistics on these types only; naming another type in the property is an error.
_STATS_TYPES = (T.StringType, T.NumericType, T.DateType, T.TimestampType, T.TimestampNTZType)


def table_properties(table: TableSpec, schema: T.StructType) -> dict[str, str]:
    """Delta properties of `table`: change data feed, audit retention, and data-skipping statistics on
    its non-PII columns only (min/max values in the log would otherwise copy PII out of the data files)."""
    retention = f"interval {table.retention_days} days"
    indexed = [f.name for f in schema.fields
               if f.name not in table.pii and f.name not in table.partition_by and isinstance(f.dataType, _STATS_TYPES)]
    properties = {
        "delta.enableChangeDataFeed": str(table.change_data_feed).lower(),
        "delta.logRetentionDuration": retention,
        "delta.deletedFileRetentionDuration": retention,
    }
    if indexed:
        properties["delta.dataSkippingStatsColumns"] = ",".join(indexed)
    else:
        properties["delta.dataSkippingNumIndexedCols"] = "0"
    return properties


def ensure_properties(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> bool:
    """Bring an existing table's Delta properties (retention, CDF, statistics columns) up to its catalog
    entry with one ALTER when they differ; returns whether that made a commit."""
    table = spec(cfg, name)
    path = table.location(cfg)
    checked = _checked_properties(spark)
    schema = read(spark, cfg, name).schema
    wanted = table_properties(table, schema)
    # Properties change only by commits like the one below: once a process has seen them as wanted for
    # this schema, looking again (a DESCRIBE DETAIL per write) cannot find them stale.
    if checked.get(path) == wanted:
        return False
    current = dict(_log(cfg, name).metadata().configuration or {})
    stale = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not stale:
        checked[path] = wanted
        return False
    assignments = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(stale.items()))
    with commit_metadata(spark, run), _conflicts_as_errors(name):
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    log.info("%s: table properties updated: %s", name, sorted(stale))
    return True


# A write's quality gate, installed by pipeline.gated_write: called with the state the table will
# have after the commit and the version that state was derived from (None for a first write); it
# raises to stop the commit. Writers look it up by table, so every caller of merge, replace_where
# and append inside a gated write is gated before it commits, whatever wraps the call.
Gate = Callable[[DataFrame, "int | None"], None]
_GATES: contextvars.ContextVar[dict[str, tuple[Gate, ...]]] = contextvars.ContextVar("c360_io_gates", default={})


@contextlib.contextmanager
def gated(name: str, gate: Gate) -> Iterator[None]:
    """Inside the block, every write to `name` calls `gate(state, base_version)` before it commits (after any
    gate an enclosing block installed for the same table)."""
    gates = _GATES.get()
    token = _GATES.set({**gates, name: (*gates.get(name, ()), gate)})
    try:
        yield
    finally:
        _GATES.reset(token)


def _is_gated(name: str) -> bool:
    return bool(_GATES.get().get(name))


def _check_gate(name: str, state: DataFrame, base_version: int | None) -> None:
    with profile.current().phase("gate", name):
        for gate in _GATES.get().get(name, ()):
            gate(state, base_version)


_CONFLICTS = (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
              ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
              MetadataChangedException, ProtocolChangedException)
# Py4J hands some of Delta's conflict exceptions over unconverted (as Py4JJavaError): their names
# and error classes in the message are the only reliable mark.
_CONFLICT_MARKS = ("ConcurrentAppendException", "ConcurrentDeleteDeleteException", "ConcurrentDeleteReadException",
                   "ConcurrentTransactionException", "ConcurrentWriteException", "MetadataChangedException",
                   "ProtocolChangedException", "DELTA_CONCURRENT", "DELTA_PROTOCOL_CHANGED", "DELTA_METADATA_CHANGED")


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, _CONFLICTS) or any(mark in str(exc)[:2000] for mark in _CONFLICT_MARKS)


@contextlib.contextmanager
def _conflicts_as_errors(name: str) -> Iterator[None]:
    """Turn Delta's commit conflicts (another writer committed first) into one readable ConcurrentWriteError."""
    try:
        yield
    except Exception as exc:
        if not _is_conflict(exc):
            raise
        kind = next((m for m in _CONFLICT_MARKS if m in str(exc)[:2000]), type(exc).__name__)
        raise ConcurrentWriteError(
            f"{name}: another run committed to this table at the same time ({kind}); nothing of this run "
            "was committed; rerun") from None


def _create(spark: SparkSession, cfg: Config, table: TableSpec, df: DataFrame, run: RunContext) -> WriteStats:
    """Create `table` with `df` as its first version: data, properties, partitioning and comment in one commit.

    Nothing is readable before that commit, so a crash leaves no table (only files no version
    references), and of two runs creating it at once exactly one commits version 0.
    """
    _check_gate(table.name, df, None)
    path = table.location(cfg)
    properties = table_properties(table, df.schema)
    try:
        _create_as_select(spark, table, path, df, properties, run)
    except Exception as exc:
        # Whoever committed version 0 first owns the table; this run's files stay unreferenced.
        if exists(spark, cfg, table.name) or _is_conflict(exc):
            raise ConcurrentWriteError(
                f"{table.name}: another run created this table at the same time; rerun") from None
        if "TABLE_OR_VIEW_ALREADY_EXISTS" not in str(exc)[:2000]:
            raise
        # CREATE TABLE refuses a folder that holds files, such as those of a create killed before its
        # commit. The DataFrameWriter ignores files no version references and sets the same properties
        # (not the comment) in its one commit.
        log.warning("%s: %s holds files but no table (a create that stopped before its commit?); "
                    "creating it without its comment", table.name, path)
        writer = df.write.format("delta").mode("errorifexists").options(**properties).partitionBy(*table.partition_by)
        try:
            with commit_metadata(spark, run):
                writer.save(path)
        except Exception as again:
            if exists(spark, cfg, table.name) or _is_conflict(again):
                raise ConcurrentWriteError(
                    f"{table.name}: another run created this table at the same time; rerun") from None
            raise
    log.info("created %s at %s", table.name, path)
    stats = _commit_stats(spark, cfg, table.name, None, run)
    return WriteStats(table.name, stats["version"], read_version=None,
                      inserted=int(stats["metrics"].get("numOutputRows", 0)))


def _create_as_select(spark: SparkSession, table: TableSpec, path: str, df: DataFrame, properties: dict[str, str],
                      run: RunContext) -> None:
    """CREATE TABLE ... AS SELECT of `df` at `path`, with the table's properties, partitioning and comment."""
    view = f"_c360_create_{uuid.uuid4().hex}"
    assignments = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(properties.items()))
    partitioning = f"PARTITIONED BY ({', '.join(f'`{c}`' for c in table.partition_by)})" if table.partition_by else ""
    comment = f"{table.name}: {table.grain}".replace("\\", "\\\\").replace("'", "\\'")
    df.createOrReplaceTempView(view)
    try:
        with commit_metadata(spark, run):
            spark.sql(f"CREATE TABLE delta.`{path}` USING DELTA {partitioning} COMMENT '{comment}' "
                      f"TBLPROPERTIES ({assignments}) AS SELECT * FROM `{view}`")
    finally:
        spark.catalog.dropTempView(view)


def _commit_stats(spark: SparkSession, cfg: Config, name: str, base_version: int | None, run: RunContext) -> dict:
    """Version, readVersion and metrics of the commit this run just made (the first one after `base_version`
    that carries this run's metadata; the newest one otherwise)."""
    after = -1 if base_version is None else base_version
    commits = sorted((c for c in _log(cfg, name).history(20) if c["version"] > after), key=lambda c: c["version"])
    mine = [c for c in commits if c.get("userMetadata") == run.commit_metadata()] or commits[-1:]
    if not mine:
        # Delta makes no commit for a write that changes nothing (an empty replaceWhere matching no rows).
        return {"version": None, "read_version": None, "metrics": {}}
    commit = mine[0]
    read_version = commit.get("readVersion")
    return {"version": int(commit["version"]), "read_version": None if read_version is None else int(read_version),
            "metrics": dict(commit.get("operationMetrics") or {})}


def append(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: RunContext) -> WriteStats:
    """Append `df` (only for append-only tables whose callers guarantee the rows are new)."""
    return _write_rows(spark, cfg, name, df, run, predicate=None)


def replace_where(spark: SparkSession, cfg: Config, name: str, df: DataFrame, predicate: str,
                  run: RunContext) -> WriteStats:
    """Atomically replace the rows matching `predicate` with `df` (a rerun replaces, never duplicates)."""
    return _write_rows(spark, cfg, name, df, run, predicate=predicate)


@contextlib.contextmanager
def _materialised(df: DataFrame) -> Iterator[DataFrame]:
    """`df` computed once and cut from its plan (a local checkpoint) for the block, released after it.

    A write reads its source up to four times (emptiness, pending changes, the gate's state, the
    commit); each would otherwise recompute the job's transform, and the gate's queries would each
    analyse its whole plan again (measured: most of a silver write's time, outside any Spark job).
    """
    frame = df.localCheckpoint(eager=True)
    try:
        yield frame
    finally:
        frame.unpersist()


def _write_rows(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: RunContext,
                predicate: str | None) -> WriteStats:
    """Add `df` to `name`, replacing the rows `predicate` matches (none when None), gated before the commit."""
    table = spec(cfg, name)
    with _materialised(check_contract(df, table)) as source:
        base = current_version(spark, cfg, name)
        if base is None:
            return _create(spark, cfg, table, source, run)
        if ensure_properties(spark, cfg, name, run):
            base = current_version(spark, cfg, name)
        if _is_gated(name):
            kept = read(spark, cfg, name, version=base).filter(~_matches(predicate))
            _check_gate(name, kept.unionByName(source), base)
        writer = source.write.format("delta")
        writer = (writer.mode("append") if predicate is None
                  else writer.mode("overwrite").option("replaceWhere", predicate))
        with commit_metadata(spark, run), _conflicts_as_errors(name):
            writer.save(table.location(cfg))
    stats = _commit_stats(spark, cfg, name, base, run)
    return WriteStats(name, stats["version"], read_version=stats["read_version"],
                      inserted=int(stats["metrics"].get("numOutputRows", 0)),
                      deleted=int(stats["metrics"].get("numDeletedRows", 0) or 0))


def _key_match(keys: tuple[str, ...], left: str, right: str) -> str:
    # Null-safe equality: a key that is null on both sides is the same key, not a new row.
    return " AND ".join(f"{left}.`{k}` <=> {right}.`{k}`" for k in keys)


def _matches(predicate: str | None) -> Column:
    """Rows for which the SQL `predicate` is true (null counts as false, as in a MERGE condition)."""
    return F.coalesce(F.expr(predicate), F.lit(False)) if predicate else F.lit(False)


def _pending_changes(source: DataFrame, target: DataFrame, keys: tuple[str, ...], change_column: str | None,
                     delete_missing: bool, retract_where: str | None = None) -> int:
    """Rows a merge would insert, update or delete; zero means the table already holds `source`."""
    compare = list(keys) + ([change_column] if change_column else [])
    s, t = source.alias("s"), target.alias("t")
    same_row = F.expr(_key_match(tuple(compare), "s", "t"))
    if change_column is None:
        upserts = source.count()
    else:
        upserts = s.join(t.select(*compare).alias("t"), on=same_row, how="left_anti").count()
    deletes = 0
    if delete_missing or retract_where:
        candidates = target if delete_missing else target.filter(_matches(retract_where))
        same_key = F.expr(_key_match(keys, "t", "s"))
        deletes = candidates.alias("t").join(s.select(*keys).alias("s"), on=same_key, how="left_anti").count()
    return upserts + deletes


def merged_state(source: DataFrame, target: DataFrame, keys: tuple[str, ...], delete_missing: bool = False,
                 retract_where: str | None = None) -> DataFrame:
    """The rows `target` holds after merging `source` on `keys` (what merge() would commit), so a gate can
    validate them before the commit: with delete_missing the source itself, else the target's rows whose
    key the source lacks (minus those `retract_where` retracts), plus the source."""
    if delete_missing:
        return source
    same_key = F.expr(_key_match(keys, "t", "s"))
    kept = (target.filter(~_matches(retract_where)).alias("t")
            .join(source.select(*keys).alias("s"), on=same_key, how="left_anti"))
    return kept.select(*source.columns).unionByName(source)


def merge(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: RunContext,
          delete_missing: bool = False, change_column: str | None = "record_hash",
          retract_where: str | None = None) -> WriteStats:
    """Upsert `df` into `name` on its catalog keys; no commit at all when nothing would change.

    delete_missing deletes every target row whose key `df` lacks; retract_where (a SQL predicate on the
    table's columns) deletes only those of them it matches, e.g. the rows of one re-delivered landing date.
    """
    table = spec(cfg, name)
    with _materialised(check_contract(df, table)) as source:
        base = current_version(spark, cfg, name)
        if base is None:
            # A first write creates the table with its rows in one commit; with no rows there is nothing
            # to create (the next run with data does it).
            if source.isEmpty():
                return WriteStats(name, None)
            return _create(spark, cfg, table, source, run)
        if ensure_properties(spark, cfg, name, run):
            base = current_version(spark, cfg, name)
        # Pinned to `base`: the gate validates what this version plus the source makes, and the commit's
        # readVersion in history tells whether anyone committed in between.
        target = read(spark, cfg, name, version=base)
        if _pending_changes(source, target, table.keys, change_column, delete_missing, retract_where) == 0:
            log.info("%s: merge skipped, the table already holds these rows", name)
            return WriteStats(name, None)
        if _is_gated(name):
            _check_gate(name, merged_state(source, target, table.keys, delete_missing, retract_where), base)
        changed = f"t.`{change_column}` <> s.`{change_column}`" if change_column else None
        builder = (
            DeltaTable.forPath(spark, table.location(cfg)).alias("t")
            .merge(source.alias("s"), _key_match(table.keys, "t", "s"))
            .whenMatchedUpdateAll(condition=changed)
            .whenNotMatchedInsertAll()
        )
        if delete_missing:
            builder = builder.whenNotMatchedBySourceDelete()
        elif retract_where:
            builder = builder.whenNotMatchedBySourceDelete(condition=retract_where)
        with commit_metadata(spark, run), _conflicts_as_errors(name):
            builder.execute()
    stats = _commit_stats(spark, cfg, name, base, run)
    metrics = stats["metrics"]
    return WriteStats(
        name, stats["version"], read_version=stats["read_version"],
        inserted=int(metrics.get("numTargetRowsInserted", 0)), updated=int(metrics.get("numTargetRowsUpdated", 0)),
        deleted=int(metrics.get("numTargetRowsDeleted", 0)),
    )


def register_catalog(spark: SparkSession, cfg: Config, names: Iterable[str] | None = None) -> list[str]:
    """Register the existing tables among `names` (default: every catalog table) in the session catalog under
    their names (silver.accounts, ...); returns the names registered."""
    registered = []
    known = _registered_paths(spark)
    tables = load_catalog(cfg).tables
    wanted = sorted(tables) if names is None else sorted(set(names) & set(tables))
    for name in wanted:
        table = tables[name]
        path = table.location(cfg)
        # The session catalog answers from memory; only unregistered tables cost a log lookup. A name
        # this session registered at another lakehouse's path (two configs in one process) is re-pointed,
        # or quality queries that join other tables by name would read the wrong lakehouse.
        if known.get(name) != path or not spark.catalog.tableExists(name):
            if not DeltaTable.isDeltaTable(spark, path):
                continue
            spark.sql(f"CREATE DATABASE IF NOT EXISTS `{table.layer}`")
            # External tables: dropping the entry leaves the data where it is.
            spark.sql(f"DROP TABLE IF EXISTS `{table.layer}`.`{table.short_name}`")
            spark.sql(f"CREATE TABLE `{table.layer}`.`{table.short_name}` USING DELTA LOCATION '{path}'")
            known[name] = path
        registered.append(name)
    return registered


_CATALOG_PATHS: dict[str, dict[str, str]] = {}
_PROPERTIES_CHECKED: dict[str, dict[str, dict[str, str]]] = {}


def _checked_properties(spark: SparkSession) -> dict[str, dict[str, str]]:
    """Path -> the properties this process found a table to have already (per Spark application)."""
    return _PROPERTIES_CHECKED.setdefault(spark.sparkContext.applicationId, {})


def _registered_paths(spark: SparkSession) -> dict[str, str]:
    """Catalog name -> path of the tables this process registered in `spark`'s session catalog."""
    return _CATALOG_PATHS.setdefault(spark.sparkContext.applicationId, {})


def row_hash(columns: list[str]) -> Column:
    """A stable fingerprint of `columns` (sha-256 over a null-aware JSON of their values)."""
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)
