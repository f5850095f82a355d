"""Delta Lake I/O: the only module that reads or writes tables. Jobs name tables, never paths."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Iterator

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from c360.catalog import TableSpec, load_catalog
from c360.config import Config
from c360.run import RunContext

log = logging.getLogger(__name__)
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


class ContractError(ValueError):
    """A DataFrame does not match the column contract its table declares in the catalog."""


@dataclass(frozen=True)
class WriteStats:
    """What one write did: the version it made (None when nothing changed) and row counts."""

    table: str
    version: int | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

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


def current_version(spark: SparkSession, cfg: Config, name: str) -> int | None:
    """Latest version of `name`, or None if the table does not exist yet."""
    if not exists(spark, cfg, name):
        return None
    return int(history(spark, cfg, name, 1).select("version").first()[0])


def version_stamp(spark: SparkSession, cfg: Config, name: str) -> dict | None:
    """Location, number and commit time of `name`'s latest version (None if no table): it names the
    content exactly, even across a table that was removed and created again."""
    if not exists(spark, cfg, name):
        return None
    row = history(spark, cfg, name, 1).select("version", "timestamp").first()
    return {"location": location(cfg, name), "version": int(row["version"]), "timestamp": row["timestamp"].isoformat()}


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


def ensure_table(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> DeltaTable:
    """Create table `name` from its catalog entry if missing (properties, partitioning, CDF)."""
    return _ensure(spark, cfg, name, run)[0]


def _ensure(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> tuple[DeltaTable, bool]:
    """The table `name`, and whether this call created it (so it holds no rows yet)."""
    table = spec(cfg, name)
    path = table.location(cfg)
    if DeltaTable.isDeltaTable(spark, path):
        return DeltaTable.forPath(spark, path), False
    retention = f"interval {table.retention_days} days"
    builder = (
        DeltaTable.createIfNotExists(spark)
        .location(path)
        .addColumns(schema_of(table))
        .comment(f"{table.name}: {table.grain}")
        .property("delta.enableChangeDataFeed", str(table.change_data_feed).lower())
        .property("delta.logRetentionDuration", retention)
        .property("delta.deletedFileRetentionDuration", retention)
    )
    if table.partition_by:
        builder = builder.partitionedBy(*table.partition_by)
    with commit_metadata(spark, run):
        builder.execute()
    log.info("created %s at %s", name, path)
    return DeltaTable.forPath(spark, path), True


def _last_commit(spark: SparkSession, cfg: Config, name: str) -> tuple[int, dict]:
    row = history(spark, cfg, name, 1).select("version", "operationMetrics").first()
    return int(row["version"]), dict(row["operationMetrics"] or {})


def append(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: RunContext) -> WriteStats:
    """Append `df` (only for append-only tables whose callers guarantee the rows are new)."""
    table = spec(cfg, name)
    ensure_table(spark, cfg, name, run)
    with commit_metadata(spark, run):
        check_contract(df, table).write.format("delta").mode("append").save(table.location(cfg))
    version, metrics = _last_commit(spark, cfg, name)
    return WriteStats(name, version, inserted=int(metrics.get("numOutputRows", 0)))


def replace_where(spark: SparkSession, cfg: Config, name: str, df: DataFrame, predicate: str,
                  run: RunContext) -> WriteStats:
    """Atomically replace the rows matching `predicate` with `df` (a rerun replaces, never duplicates)."""
    table = spec(cfg, name)
    ensure_table(spark, cfg, name, run)
    with commit_metadata(spark, run):
        (check_contract(df, table).write.format("delta").mode("overwrite")
         .option("replaceWhere", predicate).save(table.location(cfg)))
    version, metrics = _last_commit(spark, cfg, name)
    return WriteStats(name, version, inserted=int(metrics.get("numOutputRows", 0)),
                      deleted=int(metrics.get("numDeletedRows", 0) or 0))


def _key_match(keys: tuple[str, ...], left: str, right: str) -> str:
    # Null-safe equality: a key that is null on both sides is the same key, not a new row.
    return " AND ".join(f"{left}.`{k}` <=> {right}.`{k}`" for k in keys)


def _pending_changes(source: DataFrame, target: DataFrame, keys: tuple[str, ...],
                     change_column: str | None, delete_missing: bool) -> int:
    """Rows a merge would insert, update or delete; zero means the table already holds `source`."""
    compare = list(keys) + ([change_column] if change_column else [])
    s, t = source.alias("s"), target.alias("t")
    same_row = F.expr(_key_match(tuple(compare), "s", "t"))
    if change_column is None:
        upserts = source.count()
    else:
        upserts = s.join(t.select(*compare).alias("t"), on=same_row, how="left_anti").count()
    deletes = 0
    if delete_missing:
        same_key = F.expr(_key_match(keys, "t", "s"))
        deletes = t.join(s.select(*keys).alias("s"), on=same_key, how="left_anti").count()
    return upserts + deletes


def merge(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: RunContext,
          delete_missing: bool = False, change_column: str | None = "record_hash") -> WriteStats:
    """Upsert `df` into `name` on its catalog keys; no commit at all when nothing would change."""
    table = spec(cfg, name)
    delta_table, created = _ensure(spark, cfg, name, run)
    if created:
        # Into a table with no rows yet a MERGE inserts every source row: an append is the same
        # commit for a fraction of the jobs (and a first run creates every table).
        source = check_contract(df, table)
        if source.isEmpty():
            return WriteStats(name, None)
        with commit_metadata(spark, run):
            source.write.format("delta").mode("append").save(table.location(cfg))
        version, metrics = _last_commit(spark, cfg, name)
        return WriteStats(name, version, inserted=int(metrics.get("numOutputRows", 0)))
    source = check_contract(df, table).persist()
    try:
        target = delta_table.toDF()
        if _pending_changes(source, target, table.keys, change_column, delete_missing) == 0:
            log.info("%s: merge skipped, the table already holds these rows", name)
            return WriteStats(name, None)
        changed = f"t.`{change_column}` <> s.`{change_column}`" if change_column else None
        builder = (
            delta_table.alias("t")
            .merge(source.alias("s"), _key_match(table.keys, "t", "s"))
            .whenMatchedUpdateAll(condition=changed)
            .whenNotMatchedInsertAll()
        )
        if delete_missing:
            builder = builder.whenNotMatchedBySourceDelete()
        with commit_metadata(spark, run):
            builder.execute()
    finally:
        source.unpersist()
    version, metrics = _last_commit(spark, cfg, name)
    return WriteStats(
        name, version, inserted=int(metrics.get("numTargetRowsInserted", 0)),
        updated=int(metrics.get("numTargetRowsUpdated", 0)),
        deleted=int(metrics.get("numTargetRowsDeleted", 0)),
    )


def restore(spark: SparkSession, cfg: Config, name: str, version: int | None, run: RunContext) -> None:
    """Make `version` current again; with None (the table never passed a gate) remove the table."""
    path = location(cfg, name)
    if version is None:
        jvm = spark.sparkContext._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
        hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)
        # Unregister it too (an external table: the drop deletes no data), so no query reads a void.
        table = spec(cfg, name)
        spark.sql(f"DROP TABLE IF EXISTS `{table.layer}`.`{table.short_name}`")
        log.warning("%s: removed, its first version never passed its quality gate", name)
        return
    with commit_metadata(spark, run):
        DeltaTable.forPath(spark, path).restoreToVersion(version)
    log.warning("%s: restored to version %d", name, version)


def register_catalog(spark: SparkSession, cfg: Config) -> list[str]:
    """Register every existing table in the session catalog under its name (silver.accounts, ...)."""
    registered = []
    known = _registered_paths(spark)
    for name, table in sorted(load_catalog(cfg).tables.items()):
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


def _registered_paths(spark: SparkSession) -> dict[str, str]:
    """Catalog name -> path of the tables this process registered in `spark`'s session catalog."""
    return _CATALOG_PATHS.setdefault(spark.sparkContext.applicationId, {})


def row_hash(columns: list[str]) -> Column:
    """A stable fingerprint of `columns` (sha-256 over a null-aware JSON of their values)."""
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


class LandingError(ValueError):
    """A landing file cannot be read as its contract says; the message names the file."""


CORRUPT_COLUMN = "_corrupt_record"


def landing_files(spark: SparkSession, cfg: Config, landing_date: dt.date | None = None) -> DataFrame:
    """Landing files (one row each: path relative to the landing root, size, sha-256), for one date or all."""
    root = cfg.path(cfg.lakehouse.landing).rstrip("/")
    day = f"date={landing_date.isoformat()}" if landing_date else "date=*"
    pattern = f"{root}/*/*/{day}/*"
    # binaryFile reads each file whole, so the checksum works on any Hadoop file system.
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "false")
        .load(pattern)
        .select(
            F.col("path"),
            F.col("length").alias("size_bytes"),
            F.sha2(F.col("content"), 256).alias("checksum"),
        )
    ) if _glob_has_matches(spark, pattern) else spark.createDataFrame(
        [], "path string, size_bytes long, checksum string")
    prefix_len = len(_qualified(spark, root)) + 1
    return files.select(
        F.expr(f"substring(path, {prefix_len + 1})").alias("source_file"),
        F.col("path"), F.col("size_bytes"), F.col("checksum"),
    )


def _qualified(spark: SparkSession, path: str) -> str:
    """The fully qualified form Spark reports for `path` (file:/... for local paths)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return str(fs.makeQualified(hadoop_path).toString()).rstrip("/")


def _glob_has_matches(spark: SparkSession, pattern: str) -> bool:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(pattern)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    matches = fs.globStatus(hadoop_path)
    return matches is not None and len(matches) > 0


def _csv_header(spark: SparkSession, path: str, delimiter: str) -> list[str]:
    first = spark.read.text(path).first()
    if first is None:
        raise LandingError(f"{path}: empty file, expected a header line")
    line = first[0].lstrip("\ufeff")
    # Kept as written (padding too): Spark compares a CSV schema's names with the header.
    return next(csv.reader([line], delimiter=delimiter))


def _check_json_keys(spark: SparkSession, feed, path: str) -> None:
    """Raise when records of a JSON-lines file carry keys the contract lacks (the export's schema drifted)."""
    known = F.array(*[F.lit(c.header) for c in feed.columns])
    lines = spark.read.text(path).filter(F.trim(F.col("value")) != "")
    numbered = Window.orderBy("_mono").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    # json_object_keys is null for a line that is no JSON object: those are truncated records,
    # which bronze quarantines, not drift.
    drift = (
        lines.withColumn("_mono", F.monotonically_increasing_id())
        .withColumn("_record_no", F.row_number().over(numbered))
        .withColumn("_unknown", F.array_except(F.coalesce(F.json_object_keys("value"), F.array()), known))
        .filter(F.size("_unknown") > 0)
        .select("_record_no", "_unknown")
    )
    found = drift.limit(5).collect()
    if found:
        keys = sorted({k for r in found for k in r["_unknown"]})
        records = ", ".join(str(r["_record_no"]) for r in found)
        raise LandingError(
            f"{path}: records {records} have keys {keys} that the {feed.system}.{feed.feed} contract does not "
            "declare; add them to conf/sources.yaml or fix the export")


def read_landing(spark: SparkSession, feed, path: str) -> DataFrame:
    """Read one landing file of `feed` as raw strings with canonical names, `_record_no` and `_corrupt_record`."""
    by_header = {c.header.strip().casefold(): c.name for c in feed.columns}
    if feed.format == "csv":
        header = _csv_header(spark, path, feed.delimiter)
        unknown = [h for h in header if h.strip().casefold() not in by_header]
        missing = sorted(set(by_header) - {h.strip().casefold() for h in header})
        if unknown or missing:
            raise LandingError(
                f"{path}: header does not match the {feed.system}.{feed.feed} contract; "
                f"unknown columns {unknown}, missing columns {missing}")
        schema = T.StructType([T.StructField(n, T.StringType()) for n in header + [CORRUPT_COLUMN]])
        raw = (
            spark.read.schema(schema)
            .options(header=True, sep=feed.delimiter, mode="PERMISSIVE", multiLine=True,
                     columnNameOfCorruptRecord=CORRUPT_COLUMN, enforceSchema=True, encoding="UTF-8")
            .csv(path)
            .select(*[F.col(f"`{h}`").alias(by_header[h.strip().casefold()]) for h in header], F.col(CORRUPT_COLUMN))
        )
    else:
        _check_json_keys(spark, feed, path)
        schema = T.StructType([T.StructField(c.header, T.StringType()) for c in feed.columns]
                              + [T.StructField(CORRUPT_COLUMN, T.StringType())])
        raw = (
            spark.read.schema(schema)
            .options(mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT_COLUMN)
            .json(path)
            .select(*[F.col(c.header).alias(c.name) for c in feed.columns], F.col(CORRUPT_COLUMN))
        )
    # Rows keep file order within and across the splits of one file, so numbering them by the
    # monotonic id gives the 1-based record number people see when they open the file.
    window = Window.orderBy("_mono").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (
        raw.withColumn("_mono", F.monotonically_increasing_id())
        .withColumn("_record_no", F.row_number().over(window).cast("long"))
        .drop("_mono")
    )
