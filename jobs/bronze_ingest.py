"""Bronze ingest: landing files -> bronze.<system>_<feed> (raw strings + ingest metadata), bad rows -> quarantine."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io, pipeline
from c360.catalog import SourceFeed, load_catalog
from c360.config import Config
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


def _row_defects(feed: SourceFeed) -> list[Column]:
    """One candidate defect per rule and column, in the order they are reported (first wins)."""
    checks = [F.when(F.col(io.CORRUPT_COLUMN).isNotNull(), _defect("truncated_record", None, None))]
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
    return F.coalesce(F.col(io.CORRUPT_COLUMN), rebuilt)


def validate_records(raw: DataFrame, feed: SourceFeed) -> DataFrame:
    """Tag each raw record with its first defect (`_defect` struct, null when clean); duplicates after the first are defects."""
    with_defect = raw.withColumn("_defect", F.coalesce(*_row_defects(feed)))
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
        keys = ("records", "accepted", "quarantined")
        ingested = [f for f in self.files if not f["skipped"]]
        return {k: sum(f[k] for f in ingested) for k in keys} | {
            "files": len(ingested), "skipped": len(self.files) - len(ingested)}


def _feed_of(source_file: str, cfg: Config) -> SourceFeed:
    parts = source_file.split("/")
    if len(parts) != 4 or not parts[2].startswith("date="):
        raise io.LandingError(f"{source_file}: not <system>/<feed>/date=YYYY-MM-DD/<file> under the landing root")
    return load_catalog(cfg).feed(parts[0], parts[1])


def _batch_info(file_row, feed: SourceFeed, run: RunContext) -> BatchInfo:
    landing_date = dt.date.fromisoformat(file_row.source_file.split("/")[2][len("date="):])
    return BatchInfo(
        system=feed.system, feed=feed.feed, source_file=file_row.source_file, landing_date=landing_date,
        batch_id=f"{feed.system}.{feed.feed}.{landing_date:%Y%m%d}.{file_row.checksum[:12]}",
        ingested_at=run.started_at,
    )


def _scope(batches: list[BatchInfo]) -> str:
    """replaceWhere predicate covering exactly these files' rows (partition pruned by landing date)."""
    dates = ", ".join(sorted({f"'{b.landing_date.isoformat()}'" for b in batches}))
    files = ", ".join("'" + b.source_file.replace("'", "''") + "'" for b in batches)
    return f"_landing_date IN ({dates}) AND _source_file IN ({files})"


def _ingest_file(spark: SparkSession, cfg: Config, run: RunContext, batch: BatchInfo, path: str,
                 feed: SourceFeed) -> tuple[int, DataFrame]:
    """Write one file's accepted rows to its bronze table (audited before the write); return their count and the rejected rows."""
    validated = validate_records(io.read_landing(spark, feed, path), feed).persist()
    accepted = build_bronze(validated, feed, batch).persist()
    try:
        # Bronze is append-only: audit the batch itself, so a bad file never becomes a version.
        pipeline.check_batch(spark, cfg, feed.bronze_table, accepted, run)
        written = io.replace_where(spark, cfg, feed.bronze_table, accepted, _scope([batch]), run)
        return written.inserted, build_quarantine(validated, batch).localCheckpoint()
    finally:
        accepted.unpersist()
        validated.unpersist()


def _log_entries(spark: SparkSession, cfg: Config, run: RunContext, done: list[tuple]) -> DataFrame:
    rows = [(b.source_file, b.system, b.feed, b.landing_date, f.checksum, f.size_bytes, b.batch_id,
             c["records"], c["accepted"], c["quarantined"], run.started_at, run.run_id) for b, f, c in done]
    return spark.createDataFrame(rows, io.schema_of(io.spec(cfg, INGEST_LOG)))


def run_ingest(spark: SparkSession, cfg: Config, run: RunContext, landing_date: dt.date | None) -> IngestReport:
    """Ingest the landing files of one date (or all dates); files already ingested unchanged are skipped."""
    report = IngestReport(run_date=run.run_date)
    seen = {}
    if io.exists(spark, cfg, INGEST_LOG):
        seen = {r.source_file: r.checksum
                for r in io.read(spark, cfg, INGEST_LOG).select("source_file", "checksum").collect()}
    done, rejected = [], []
    for file_row in io.landing_files(spark, cfg, landing_date).orderBy("source_file").collect():
        feed = _feed_of(file_row.source_file, cfg)
        if seen.get(file_row.source_file) == file_row.checksum:
            report.files.append({"source_file": file_row.source_file, "skipped": True,
                                 "records": 0, "accepted": 0, "quarantined": 0})
            continue
        batch = _batch_info(file_row, feed, run)
        accepted, quarantined = _ingest_file(spark, cfg, run, batch, file_row.path, feed)
        counts = {"accepted": accepted, "quarantined": quarantined.count()}
        counts["records"] = counts["accepted"] + counts["quarantined"]
        log.info("ingested %s: %d records, %d accepted, %d quarantined", batch.source_file,
                 counts["records"], counts["accepted"], counts["quarantined"])
        report.files.append({"source_file": batch.source_file, "skipped": False, **counts})
        done.append((batch, file_row, counts))
        rejected.append(quarantined)
    if done:
        # Quarantine and the ingest log are written once per run, after every bronze write:
        # a crash before this point leaves the files unlogged, so a rerun ingests them again.
        batches = [b for b, _, _ in done]
        everything = functools.reduce(DataFrame.unionByName, rejected)
        pipeline.check_batch(spark, cfg, QUARANTINE, everything, run)
        io.replace_where(spark, cfg, QUARANTINE, everything, _scope(batches), run)
        io.merge(spark, cfg, INGEST_LOG, _log_entries(spark, cfg, run, done), run, change_column=None)
    log.info("ingest %s: %s", landing_date or "all dates", report.totals())
    return report


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: ingest the landing files of --date (default: all)."""
    parser = pipeline.job_parser(JOB, __doc__, date_help="landing date YYYY-MM-DD (default: every date)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    report = run_ingest(spark, cfg, run, args.date)
    pipeline.emit(report.totals())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
