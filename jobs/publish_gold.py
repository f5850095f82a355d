"""Publish gold.customer_360: one row per customer_id - golden attributes, holdings, value, tenure, activity, consent.

The spark-submit entry of the DAG's task; the service is c360.publish.
"""

from __future__ import annotations

from c360 import pipeline
from c360.publish import GOLD, JOB, publish

__all__ = ["GOLD", "JOB", "publish", "main"]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: publish gold.customer_360 for --date."""
    parser = pipeline.job_parser(JOB, __doc__)
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    stats = publish(spark, cfg, run)
    pipeline.emit({"table": GOLD, "version": stats.version, "inserted": stats.inserted, "updated": stats.updated,
                   "deleted": stats.deleted})
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
