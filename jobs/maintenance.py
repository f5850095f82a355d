"""Delta maintenance: history checks, OPTIMIZE and VACUUM of every catalogued table, retention from conf.

VACUUM never shortens time travel below a table's audit retention: it keeps every file that a
version younger than max(maintenance.vacuum_retention_days, the table's retention_days) needs.
History checks are audit checks: every recent commit names the job and run that made it, and
the table's own log and file retention properties still cover its audit retention.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from c360 import io, pipeline
from c360.catalog import TableSpec, load_catalog
from c360.config import Config
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "maintenance"
STEPS = ("history", "optimize", "vacuum")
_INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+days?\s*$", re.IGNORECASE)
_RETENTION_PROPERTIES = ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")
# Delta writes these commits itself around a VACUUM; they carry no application metadata.
_UNTAGGED_OPERATIONS = {"VACUUM START", "VACUUM END"}


class HistoryCheckError(RuntimeError):
    """A table's history fails an audit check; str() lists every finding."""


@dataclass(frozen=True)
class Finding:
    """One history-check finding on one table."""

    table: str
    problem: str

    def __str__(self) -> str:
        return f"{self.table}: {self.problem}"


def retention_days(cfg: Config, table: TableSpec) -> int:
    """Days of history VACUUM keeps for `table`: the longer of conf's and the table's audit retention."""
    if cfg.maintenance.vacuum_retention_days < table.retention_days:
        log.debug("%s: vacuum retention raised from %d to its audit retention %d days", table.name,
                  cfg.maintenance.vacuum_retention_days, table.retention_days)
    return max(cfg.maintenance.vacuum_retention_days, table.retention_days)


def _interval_days(value: str | None) -> int | None:
    match = _INTERVAL.match(value or "")
    return int(match.group(1)) if match else None


def check_history(spark: SparkSession, cfg: Config, name: str) -> list[Finding]:
    """Audit findings for `name`: untagged commits in its recent history, retention properties too short."""
    table = io.spec(cfg, name)
    findings = []
    commits = io.history(spark, cfg, name, cfg.maintenance.history_versions).select(
        "version", "operation", "userMetadata").collect()
    for commit in commits:
        if commit.operation in _UNTAGGED_OPERATIONS:
            continue
        try:
            meta = json.loads(commit.userMetadata or "")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict) or not meta.get("run_id") or not meta.get("job"):
            findings.append(Finding(name, f"version {commit.version} ({commit.operation}) names no job and run: "
                                          "a write made outside the pipeline"))
    properties = DeltaTable.forPath(spark, table.location(cfg)).detail().first().properties or {}
    for prop in _RETENTION_PROPERTIES:
        days = _interval_days(properties.get(prop))
        if days is None or days < table.retention_days:
            findings.append(Finding(name, f"{prop} is {properties.get(prop)!r}, shorter than the audit "
                                          f"retention of {table.retention_days} days"))
    return findings


def optimize(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> dict:
    """Compact `name` when it has at least maintenance.optimize_min_files files; content is unchanged."""
    delta_table = DeltaTable.forPath(spark, io.location(cfg, name))
    files = int(delta_table.detail().first().numFiles or 0)
    if files < cfg.maintenance.optimize_min_files:
        return {"table": name, "files": files, "optimized": False}
    with io.commit_metadata(spark, run):
        metrics = delta_table.optimize().executeCompaction().first().metrics
    removed, added = int(metrics.numFilesRemoved), int(metrics.numFilesAdded)
    log.info("%s: OPTIMIZE %d files -> %d", name, removed, added)
    return {"table": name, "files": files, "optimized": True, "files_removed": removed, "files_added": added}


def vacuum(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> dict:
    """VACUUM `name`, keeping files for retention_days(cfg, table) days of time travel."""
    days = retention_days(cfg, io.spec(cfg, name))
    with io.commit_metadata(spark, run):
        DeltaTable.forPath(spark, io.location(cfg, name)).vacuum(float(days * 24))
    return {"table": name, "retention_days": days}


def run_maintenance(spark: SparkSession, cfg: Config, run: RunContext, steps: list[str],
                    tables: list[str] | None = None) -> dict:
    """Run `steps` on every existing table (or `tables`); raises HistoryCheckError after reporting findings."""
    catalog = load_catalog(cfg)
    names = [n for n in (tables or sorted(catalog.tables)) if catalog.table(n) and io.exists(spark, cfg, n)]
    report: dict = {"tables": len(names)}
    if "history" in steps:
        findings = [f for n in names for f in check_history(spark, cfg, n)]
        report["findings"] = [str(f) for f in findings]
        if findings:
            raise HistoryCheckError(f"{len(findings)} history findings:\n" + "\n".join(f"  {f}" for f in findings))
    if "optimize" in steps:
        report["optimize"] = [optimize(spark, cfg, n, run) for n in names]
    if "vacuum" in steps:
        report["vacuum"] = [vacuum(spark, cfg, n, run) for n in names]
    return report


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: --step history|optimize|vacuum (repeatable, default all) on every table."""
    from c360.errors import DataError

    parser = pipeline.job_parser(JOB, __doc__)
    parser.add_argument("--step", action="append", choices=STEPS, help="step to run (repeatable; default: all)")
    parser.add_argument("--table", action="append", help="only this table (repeatable)")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    try:
        pipeline.emit(run_maintenance(spark, cfg, run, args.step or list(STEPS), args.table))
    except HistoryCheckError as exc:
        # A finding is in the tables' history: rerunning the check cannot clear it (exit 4, no retry).
        raise DataError(str(exc)) from exc
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
