"""Silver conform: bronze raw strings -> typed, standardised, de-duplicated silver tables (customers as SCD2).

The spark-submit entry of the DAG's task; the service is c360.conform.
"""

from __future__ import annotations

from c360 import pipeline
from c360.conform import (
    ConformParams, JOB, STEPS, build_accounts, retraction, run_conform, typed, with_record_hash,
)

__all__ = [
    "ConformParams", "JOB", "STEPS", "build_accounts", "retraction", "run_conform", "typed", "with_record_hash", "main",
]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: conform bronze into silver for --date (default: everything)."""
    parser = pipeline.job_parser(JOB, __doc__, date_help="run date YYYY-MM-DD (default: all landed data)")
    parser.add_argument("--table", action="append", help="only this silver table (repeatable)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    results = run_conform(spark, cfg, run, args.date, args.table)
    pipeline.emit({t: {"version": s.version, "inserted": s.inserted, "updated": s.updated, "deleted": s.deleted}
                   for t, s in results.items()})
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
