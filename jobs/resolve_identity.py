"""Identity resolution: silver.customer_records -> stable customer ids (xref, events, review queue, golden records).

The spark-submit entry of the DAG's identity.resolve task; the service is c360.identity.service.
"""

from __future__ import annotations

from c360 import pipeline
from c360.identity.service import JOB, ResolutionReport, run_resolution

__all__ = ["JOB", "ResolutionReport", "run_resolution", "main"]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: resolve identities for --date (incremental unless --full-relink)."""
    parser = pipeline.job_parser(JOB, __doc__)
    parser.add_argument("--full-relink", action="store_true", help="re-score every record instead of changed ones")
    parser.add_argument("--retrain", action="store_true", help="train and store a new model version first")
    parser.add_argument("--backend", choices=["duckdb", "spark"], help="override conf/identity.yaml backend")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    report = run_resolution(spark, cfg, run, args.full_relink, args.retrain, args.backend)
    pipeline.emit(report.as_dict())
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
