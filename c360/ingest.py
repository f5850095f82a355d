"""Bronze ingest: landing files -> bronze.<system>_<feed> (raw strings + ingest metadata), bad rows -> quarantine."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io, landing, pipeline, profile
from c360.catalog import SourceFeed, load_catalog
from c360.config import Config
from c360.faults import crash_point
from c360.run import RunContext
from c360.typing_rules import parsed

log = logging.getLogger(__name__)
JOB = "bronze_ingest"
QUARANTINE = "bronze.quarantine"
INGEST_LOG = "bronze.ingest_log"


@dataclass(frozen=True)
class BatchInfo:
    """Where a batch of raw records came from; becomes the bronze metadata columns."""

    system: str
    feed: str
    source_file: str
    landing_date: dt.date
    batch_id: str
    ingested_at: dt.datetime


def _defect(reason: str, field_name: str | None, raw_value: Column | None) -> Column:
    return F.struct(
        F.lit(reason).alias("reason"),
        F.lit(field_name).cast("string").alias("field"),
        (raw_value if raw_value is not None else F.lit(None)).cast("string").alias("raw_value"),
    )


def _row_defects(feed: SourceFeed, bad_bytes: bool) -> list[Column]:
    """One candidate defect per rule and column, in the order they are reported (first wins)."""
    checks = []
    if bad_bytes:
        # The file holds bytes invalid in its declared encoding, and Spark decoded each as U+FFFD:
        # the records that show one are those bytes' records, quarantined rather than repaired.
        for name in [c.name for c in feed.columns] + [landing.CORRUPT_COLUMN]:
            field_name = None if name == landing.CORRUPT_COLUMN else name
            checks.append(F.when(F.col(name).contains("\ufffd"), _defect("bad_encoding", field_name, F.col(name))))
    checks.append(F.when(F.col(landing.CORRUPT_COLUMN).isNotNull(), _defect("truncated_record", None, None)))
    for col in feed.columns:
        raw = F.col(col.name)
        present = raw.isNotNull() & (F.trim(raw) != "")
        if col.required:
            checks.append(F.when(~present, _defect("missing_required", col.name, raw)))
    for col in feed.columns:
        raw = F.col(col.name)
        present = raw.isNotNull() & (F.trim(raw) != "")
        value = parsed(col)
        if col.type in ("date", "timestamp"):
            checks.append(F.when(present & value.isNull(), _defect("malformed_date", col.name, raw)))
        elif col.type in ("decimal", "int"):
            checks.append(F.when(present & value.isNull(), _defect("malformed_number", col.name, raw)))
        if col.min is not None:
            checks.append(F.when(value < F.lit(col.min), _defect("negative_amount", col.name, raw)))
        if col.allowed is not None:
            unknown = present & ~F.upper(F.trim(raw)).isin(list(col.allowed))
            checks.append(F.when(unknown, _defect("unknown_currency", col.name, raw)))
    return checks


def _raw_record(feed: SourceFeed) -> Column:
    """The record as the file held it: the unparsed text when Spark kept it, else the fields joined."""
    if feed.format == "csv":
        rebuilt = F.concat_ws(feed.delimiter, *[F.coalesce(F.col(c.name), F.lit("")) for c in feed.columns])
    else:
        rebuilt = F.to_json(F.struct(*[F.col(c.name).alias(c.header) for c in feed.columns]))
    return F.coalesce(F.col(landing.CORRUPT_COLUMN), rebuilt)


def validate_records(raw: DataFrame, feed: SourceFeed, bad_bytes: bool = False) -> DataFrame:
    """Tag each raw record with its first defect (`_defect` struct, null when clean); duplicates after the first are defects.

    `bad_bytes`: the file failed to decode in its declared encoding (records showing U+FFFD are quarantined).
    """
    with_defect = raw.withColumn("_defect", F.coalesce(*_row_defects(feed, bad_bytes)))
    clean = F.col("_defect").isNull()
    first_clean = Window.partitionBy(*feed.key).orderBy(
        F.when(clean, 0).otherwise(1), F.col("_record_no")
    ).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    is_repeat = clean & (F.row_number().over(first_clean) > 1)
    return with_defect.withColumn(
        "_defect", F.when(is_repeat, _defect("duplicate_key", None, None)).otherwise(F.col("_defect"))
    ).withColumn("_raw_record", _raw_record(feed))


def _metadata(batch: BatchInfo) -> list[Column]:
    return [
        F.lit(batch.system).alias("_source_system"),
        F.lit(batch.feed).alias("_feed"),
        F.lit(batch.source_file).alias("_source_file"),
        F.col("_record_no").cast("long").alias("_record_no"),
        F.lit(batch.landing_date).cast("date").alias("_landing_date"),
        F.lit(batch.batch_id).alias("_batch_id"),
        F.lit(batch.ingested_at).cast("timestamp").alias("_ingested_at"),
    ]


def build_bronze(validated: DataFrame, feed: SourceFeed, batch: BatchInfo) -> DataFrame:
    """Accepted records of one file: raw string columns in contract order plus ingest metadata."""
    return validated.filter(F.col("_defect").isNull()).select(
        *[F.col(c.name) for c in feed.columns], *_metadata(batch)
    )


def build_quarantine(validated: DataFrame, batch: BatchInfo) -> DataFrame:
    """Rejected records of one file with the raw record, the reason and the offending field."""
    meta = _metadata(batch)
    return validated.filter(F.col("_defect").isNotNull()).select(
        *meta,
        F.col("_defect.reason").alias("reason"),
        F.col("_defect.field").alias("field"),
        F.col("_defect.raw_value").alias("raw_value"),
        F.col("_raw_record").alias("raw_record"),
    )


@dataclass
class IngestReport:
    """Counts of one ingest run, per file."""

    run_date: dt.date
    files: list[dict] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Files ingested and skipped, and the records, accepted and quarantined of those ingested."""
        keys = ("records", "accepted", "quarantined")
        ingested = [f for f in self.files if not f["skipped"]]
        return {k: sum(f[k] for f in ingested) for k in keys} | {
            "files": len(ingested), "skipped": len(self.files) - len(ingested)}


def _feed_of(source_file: str, cfg: Config) -> SourceFeed:
    parts = source_file.split("/")
    return load_catalog(cfg).feed(parts[0], parts[1])


def _batch_info(landed: landing.LandingFile, feed: SourceFeed, run: RunContext) -> BatchInfo:
    landing_date = dt.date.fromisoformat(landed.source_file.split("/")[2][len("date="):])
    return BatchInfo(
        system=feed.system, feed=feed.feed, source_file=landed.source_file, landing_date=landing_date,
        batch_id=f"{feed.system}.{feed.feed}.{landing_date:%Y%m%d}.{landed.checksum[:12]}",
        ingested_at=run.started_at,
    )


def _scope(batches: list[BatchInfo]) -> str:
    """replaceWhere predicate covering exactly these files' rows (partition pruned by landing date)."""
    dates = ", ".join(sorted({f"'{b.landing_date.isoformat()}'" for b in batches}))
    files = ", ".join("'" + b.source_file.replace("'", "''") + "'" for b in batches)
    return f"_landing_date IN ({dates}) AND _source_file IN ({files})"


def build_unparsed(spark: SparkSession, schema, lines: list[str], first_record_no: int, reason: str,
                   batch: BatchInfo) -> DataFrame:
    """Quarantine rows (of `schema`) for physical lines no record could be parsed from: one per line, numbered on."""
    rows = [(batch.system, batch.feed, batch.source_file, first_record_no + i, batch.landing_date, batch.batch_id,
             batch.ingested_at, reason, None, None, line) for i, line in enumerate(lines)]
    return spark.createDataFrame(rows, schema)


@dataclass(frozen=True)
class FileOutcome:
    """What ingesting one landing file did: the counts the ingest log keeps and the rejected rows."""

    status: str
    records: int
    accepted: int
    quarantined: int
    rejected: DataFrame | None


def _status(landed: landing.LandingFile) -> str:
    if landed.size_bytes == 0:
        return "empty"
    if landed.open_quote_line is not None:
        return "split_at_open_quote"
    return "header_only" if landed.records == 0 else "ingested"


def _parse(spark: SparkSession, cfg: Config, landed: landing.LandingFile, feed: SourceFeed,
           batch: BatchInfo) -> tuple[DataFrame | None, DataFrame | None, int]:
    """The file's records validated, and quarantine rows (with their count) for lines no record came from.

    A quote that never closes would make the CSV parser swallow every line after it into one
    value: the records before its line are parsed from a copy of the file cut there, and each line
    from it on is quarantined on its own (reason unterminated_quote), so every line is accounted for.
    """
    if landed.records == 0 and landed.open_quote_line is None:
        return None, None, 0
    unparsed, lines = None, []
    path, scratch = landed.path, None
    if landed.open_quote_line is not None:
        lines = landing.tail_lines(landed.path, landed.open_quote_offset, feed.encoding)
        unparsed = build_unparsed(spark, io.schema_of(io.spec(cfg, QUARANTINE)), lines,
                                  landed.records_before_open_quote + 1, "unterminated_quote", batch)
        log.warning("%s: the quote opened on line %d never closes; %d lines from there quarantined",
                    landed.source_file, landed.open_quote_line, len(lines))
        if landed.records_before_open_quote == 0:
            return None, unparsed, len(lines)
        scratch = path = landing.prefix_copy(cfg, landed.path, landed.open_quote_offset)
    try:
        raw = landing.read_landing(spark, feed, path, name=landed.source_file)
        # Materialised once: the counts, the bronze rows and the quarantine rows all read it.
        validated = validate_records(raw, feed, bad_bytes=not landed.valid_encoding).localCheckpoint()
    finally:
        if scratch:
            landing.remove(scratch)
    return validated, unparsed, len(lines)


def _counts(validated: DataFrame | None) -> tuple[int, int]:
    """Records parsed and accepted, in one pass."""
    if validated is None:
        return 0, 0
    row = validated.agg(F.count(F.lit(1)).alias("parsed"),
                        F.count(F.when(F.col("_defect").isNull(), 1)).alias("accepted")).first()
    return int(row["parsed"]), int(row["accepted"])


def _ingest_file(spark: SparkSession, cfg: Config, run: RunContext, batch: BatchInfo,
                 landed: landing.LandingFile, feed: SourceFeed) -> FileOutcome:
    """Write one file's accepted rows to its bronze table (audited before the write) and account for every record."""
    prof = profile.current()
    with prof.phase("parse", feed.bronze_table):
        validated, unparsed, unparsed_lines = _parse(spark, cfg, landed, feed, batch)
        parsed, accepted_count = _counts(validated)
    expected = landed.records_before_open_quote if landed.open_quote_line is not None else landed.records
    if parsed != expected:
        raise landing.LandingError(
            f"{landed.source_file}: the parser found {parsed} records but the file's {landed.physical_lines} "
            f"lines hold {expected}; not ingested (check its quoting and line endings)")
    accepted = (build_bronze(validated, feed, batch) if validated is not None
                else spark.createDataFrame([], io.schema_of(io.spec(cfg, feed.bronze_table))))
    # Bronze is append-only: audit the batch itself, so a bad file never becomes a version. A
    # re-delivered file replaces its earlier rows, even with none (header-only or empty), and a
    # feed whose first delivery is empty still has its (empty) table for silver to read.
    with prof.phase("gate", feed.bronze_table):
        pipeline.check_batch(spark, cfg, feed.bronze_table, accepted, run)
    with prof.phase("write", feed.bronze_table):
        written = io.replace_where(spark, cfg, feed.bronze_table, accepted, _scope([batch]), run)
    if written.changed and written.inserted != accepted_count:
        raise RuntimeError(f"{landed.source_file}: {accepted_count} records accepted but {written.inserted} written "
                           f"to {feed.bronze_table} (version {written.version}); nothing logged, rerun the ingest")
    crash_point("bronze_ingest.after_file_commit", feed.bronze_table)
    rejected = [df for df in (build_quarantine(validated, batch) if validated is not None else None, unparsed)
                if df is not None]
    quarantined = parsed - accepted_count + unparsed_lines
    return FileOutcome(_status(landed), parsed + unparsed_lines, accepted_count, quarantined,
                       functools.reduce(DataFrame.unionByName, rejected) if rejected else None)


def _log_entries(spark: SparkSession, cfg: Config, run: RunContext, done: list[tuple]) -> DataFrame:
    rows = [(b.source_file, b.system, b.feed, b.landing_date, f.checksum, f.size_bytes, f.physical_lines, b.batch_id,
             o.status, o.records, o.accepted, o.quarantined, run.started_at, run.run_id) for b, f, o in done]
    return spark.createDataFrame(rows, io.schema_of(io.spec(cfg, INGEST_LOG)))


def run_ingest(spark: SparkSession, cfg: Config, run: RunContext, landing_date: dt.date | None) -> IngestReport:
    """Ingest the landing files of one date (or all dates); files already ingested unchanged are skipped."""
    report = IngestReport(run_date=run.run_date)
    prof = profile.start(JOB, run.run_id, spark)
    seen = {}
    if io.exists(spark, cfg, INGEST_LOG):
        seen = {r.source_file: r.checksum
                for r in io.read(spark, cfg, INGEST_LOG).select("source_file", "checksum").collect()}
    done, rejected = [], []
    for source_file, path, _ in landing.list_files(cfg, landing_date):
        feed = _feed_of(source_file, cfg)
        with prof.phase("scan", feed.bronze_table):
            landed = landing.scan(source_file, path, feed)
        if seen.get(source_file) == landed.checksum:
            report.files.append({"source_file": source_file, "skipped": True,
                                 "records": 0, "accepted": 0, "quarantined": 0})
            continue
        batch = _batch_info(landed, feed, run)
        outcome = _ingest_file(spark, cfg, run, batch, landed, feed)
        log.info("ingested %s (%s, %d bytes, %d lines): %d records, %d accepted, %d quarantined", source_file,
                 outcome.status, landed.size_bytes, landed.physical_lines, outcome.records, outcome.accepted,
                 outcome.quarantined)
        report.files.append({"source_file": source_file, "skipped": False, "status": outcome.status,
                             "size_bytes": landed.size_bytes, "physical_lines": landed.physical_lines,
                             "records": outcome.records, "accepted": outcome.accepted,
                             "quarantined": outcome.quarantined})
        done.append((batch, landed, outcome))
        if outcome.rejected is not None:
            rejected.append(outcome.rejected)
    if done:
        # Quarantine and the ingest log are written once per run, after every bronze write:
        # a crash before this point leaves the files unlogged, so a rerun ingests them again.
        crash_point("bronze_ingest.before_quarantine")
        batches = [b for b, _, _ in done]
        schema = io.schema_of(io.spec(cfg, QUARANTINE))
        everything = functools.reduce(DataFrame.unionByName, rejected, spark.createDataFrame([], schema))
        expected = sum(o.quarantined for _, _, o in done)
        with prof.phase("gate", QUARANTINE):
            pipeline.check_batch(spark, cfg, QUARANTINE, everything, run)
        with prof.phase("write", QUARANTINE):
            written = io.replace_where(spark, cfg, QUARANTINE, everything, _scope(batches), run)
        if written.inserted != expected:
            raise RuntimeError(f"{expected} records quarantined but {written.inserted} written to {QUARANTINE}; "
                               "nothing logged, rerun the ingest")
        crash_point("bronze_ingest.before_log")
        with prof.phase("write", INGEST_LOG):
            io.merge(spark, cfg, INGEST_LOG, _log_entries(spark, cfg, run, done), run, change_column=None)
    log.info("ingest %s: %s", landing_date or "all dates", report.totals())
    prof.save(cfg)
    return report
