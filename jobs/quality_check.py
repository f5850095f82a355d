"""Quality check: re-validate the current version of a layer's tables as one gate, then render Data Docs.

Each write already passed its own table's suite; this step validates the layer as it stands
together (suites that compare tables see their final versions) before the next layer reads it.
A table whose version passed its suite with every table that suite reads at today's versions is
not validated again (the verdict of the same suite on the same Delta versions cannot change), so
a rerun, and a table nothing changed since its own gate, costs a history lookup, not a GX run.
Nothing is written, so nothing needs restoring: a critical failure fails the step (exit code 4)
with every failing table's GX summary in the log, and downstream steps do not run.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from c360 import io, pipeline, quality
from c360.catalog import load_catalog
from c360.config import Config
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "quality_check"


def tables_to_check(spark: SparkSession, cfg: Config, layers: list[str], tables: list[str]) -> list[str]:
    """The existing tables named in `tables`, plus every existing table of `layers`, in catalog order."""
    catalog = load_catalog(cfg)
    for name in tables:
        catalog.table(name)
    wanted = [n for n in sorted(catalog.tables) if n in tables or catalog.table(n).layer in layers]
    return [n for n in wanted if io.exists(spark, cfg, n)]


def check(spark: SparkSession, cfg: Config, run: RunContext, names: list[str]) -> list[quality.QualityResult]:
    """Validate each table's current version with its suite (the row-count floor is the gates' job, so 0 here)."""
    results = []
    for name in names:
        result = pipeline.audit(spark, cfg, name, None, run, reuse_passed=True)
        log.log(logging.INFO if result.success else logging.ERROR, "%s", result.summary)
        results.append(result)
    return results


def combined(results: list[quality.QualityResult]) -> quality.QualityResult:
    """One result for the whole check: failed if any table failed, with every failing summary."""
    failed = [r for r in results if not r.success]
    summary = "\n".join(r.summary for r in failed) or f"{len(results)} tables passed"
    return quality.QualityResult(
        table=",".join(r.table for r in failed or results), success=not failed,
        evaluated=sum(r.evaluated for r in results),
        critical_failures=[line for r in failed for line in r.critical_failures],
        warnings=[line for r in results for line in r.warnings], summary=summary, data_docs_index=None)


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: validate --layer (default silver) and --table, fail on a critical check."""
    parser = pipeline.job_parser(JOB, __doc__,
                                 run_id_help="run id recorded with the results (default: from the environment)")
    parser.add_argument("--layer", action="append", help="validate every table of this layer (repeatable)")
    parser.add_argument("--table", action="append", default=[], help="validate this table too (repeatable)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    layers = args.layer or ([] if args.table else ["silver"])
    results = check(spark, cfg, run, tables_to_check(spark, cfg, layers, args.table))
    docs = quality.build_data_docs(cfg.path(cfg.lakehouse.quality)) if cfg.quality.data_docs else None
    outcome = combined(results)
    pipeline.emit({"tables": len(results), "failed": [r.table for r in results if not r.success],
                   "warnings": len(outcome.warnings), "data_docs": docs})
    quality.gate(outcome)
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
