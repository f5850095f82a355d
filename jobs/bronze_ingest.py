"""Bronze ingest: landing files -> bronze.<system>_<feed> (raw strings + ingest metadata), bad rows -> quarantine.

The spark-submit entry of the DAG's task; the service is c360.ingest.
"""

from __future__ import annotations

from c360 import pipeline
from c360.ingest import INGEST_LOG, IngestReport, JOB, QUARANTINE, _feed_of, run_ingest, validate_records

__all__ = [
    "INGEST_LOG", "IngestReport", "JOB", "QUARANTINE", "_feed_of", "run_ingest", "validate_records", "main",
]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: ingest the landing files of --date (default: all)."""
    parser = pipeline.job_parser(JOB, __doc__, date_help="landing date YYYY-MM-DD (default: every date)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    report = run_ingest(spark, cfg, run, args.date)
    pipeline.emit(report.totals())
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
