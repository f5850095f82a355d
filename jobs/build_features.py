"""Build the feature store: features.customer_daily as of --date (with --history, the training as-of dates
too) and the churn labels whose window has passed.

The spark-submit entry of the DAG's task; the service is c360.features.
"""

from __future__ import annotations

from c360 import pipeline
from c360.features import JOB, build

__all__ = ["JOB", "build", "main"]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: build features (and labels) for --date."""
    parser = pipeline.job_parser(JOB, __doc__)
    parser.add_argument("--history", action="store_true",
                        help="also the training as-of dates (conf/features.yaml history), not only --date")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    written = build(spark, cfg, run, history=args.history)
    pipeline.emit({s.table: {"version": s.version, "inserted": s.inserted, "deleted": s.deleted} for s in written})
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
