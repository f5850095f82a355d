"""Score the run date's features with every enabled model's champion into gold.scores, with reasons.

The spark-submit entry of the DAG's task; the service is c360.scoring.
"""

from __future__ import annotations

from c360 import pipeline
from c360.scoring import JOB, SCORES, score

__all__ = ["JOB", "SCORES", "score", "main"]


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: score --date with each model's champion."""
    parser = pipeline.job_parser(JOB, __doc__)
    parser.add_argument("--model", action="append", help="only this model (repeatable)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    pipeline.emit(score(spark, cfg, run, args.model))
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
