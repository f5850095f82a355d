"""What every job's main() shares: start-up, run context, quality-gated writes, the run summary."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import sys
from typing import Callable

from pyspark.sql import SparkSession

from c360 import io, quality
from c360.config import Config, load_config
from c360.run import RunContext, new_run as _new_run
from c360.spark import get_spark

log = logging.getLogger(__name__)


def configure_logging(level: int = logging.INFO) -> None:
    """One log format for jobs and the CLI; py4j's chatter stays at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)


def start(env: str | None = None) -> tuple[Config, SparkSession]:
    """Load config and the SparkSession for a job's main()."""
    configure_logging()
    cfg = load_config(env)
    return cfg, get_spark(cfg)


def new_run(cfg: Config, job: str, run_date: dt.date | None, run_id: str | None = None) -> RunContext:
    """A run of `job`; without a run date the run is for today (UTC)."""
    return _new_run(cfg, job, run_date or dt.datetime.now(dt.timezone.utc).date(), run_id)


def job_parser(job: str, doc: str | None, date_help: str = "run date YYYY-MM-DD (default: today)",
               run_id_help: str = "run id recorded in every commit (default: from the environment)"
               ) -> argparse.ArgumentParser:
    """The argument parser every job's main() starts from: --date and --run-id, as the DAG tasks pass them."""
    parser = argparse.ArgumentParser(prog=f"jobs.{job}", description=doc)
    parser.add_argument("--date", type=dt.date.fromisoformat, help=date_help)
    parser.add_argument("--run-id", help=run_id_help)
    return parser


def start_job(job: str, args: argparse.Namespace) -> tuple[Config, SparkSession, RunContext]:
    """Config, SparkSession and the run of a job's main(), from the parsed --date and --run-id."""
    cfg, spark = start()
    return cfg, spark, new_run(cfg, job, args.date, args.run_id)


def audit(spark: SparkSession, cfg: Config, name: str, previous_version: int | None,
          run: RunContext) -> quality.QualityResult:
    """Run `name`'s quality suite on its current version, with row-count sanity against `previous_version`."""
    previous_rows = 0 if previous_version is None else io.read(spark, cfg, name, version=previous_version).count()
    io.register_catalog(spark, cfg)
    return quality.validate(
        io.read(spark, cfg, name), name,
        quality_root=cfg.path(cfg.lakehouse.quality), run_id=run.run_id,
        parameters={"min_row_count": math.floor(previous_rows * cfg.quality.min_row_ratio_vs_previous)},
        build_docs=False,
    )


def check_batch(spark: SparkSession, cfg: Config, name: str, batch, run: RunContext) -> quality.QualityResult:
    """Audit-before-write for append-only tables: validate the rows about to be written, raise if critical checks fail."""
    io.register_catalog(spark, cfg)
    result = quality.validate(
        batch, name, quality_root=cfg.path(cfg.lakehouse.quality), run_id=run.run_id,
        parameters={"min_row_count": 0}, build_docs=False,
    )
    quality.gate(result)
    return result


def gated_write(spark: SparkSession, cfg: Config, name: str, run: RunContext,
                write: Callable[[], io.WriteStats]) -> io.WriteStats:
    """Write-audit-publish: write, validate the new version, and restore the previous one if a critical check fails."""
    before = io.current_version(spark, cfg, name)
    stats = write()
    if not stats.changed:
        return stats
    result = audit(spark, cfg, name, before, run)
    if not result.success:
        io.restore(spark, cfg, name, before, run)
        log.error("%s: quality gate failed, version %s stays current\n%s", name, before, result.summary)
        quality.gate(result)
    return stats


def emit(summary: dict) -> None:
    """Print a job's summary as one JSON line on stdout, for schedulers and scripts."""
    sys.stdout.write(json.dumps(summary, default=str, sort_keys=True) + "\n")
