"""What every job's main() shares: start-up, run context, quality-gated writes, the run summary."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Callable

from pyspark.sql import SparkSession

from c360 import faults, io, quality
from c360.catalog import load_catalog
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


def _gate_inputs(spark: SparkSession, cfg: Config, name: str) -> dict:
    """What a suite's verdict on `name` depends on: the suite file, GX's version, and the exact
    version (location, number, commit time) of the table and of every table its queries read."""
    from importlib.metadata import version as package_version

    suite = quality.load_suite(name)
    catalog = load_catalog(cfg).tables
    stamps = {t: io.version_stamp(spark, cfg, t) if t in catalog else None
              for t in [name, *quality.referenced_tables(suite)]}
    return {"suite_sha256": hashlib.sha256(Path(suite["path"]).read_bytes()).hexdigest(),
            "great_expectations": package_version("great_expectations"), "tables": stamps}


def _ledger_path(cfg: Config, name: str) -> Path:
    return Path(cfg.path(cfg.lakehouse.quality)) / "passed" / f"{name}.json"


def _record_pass(cfg: Config, name: str, inputs: dict, run: RunContext, result: quality.QualityResult,
                 min_row_count: int) -> None:
    """Remember that these exact inputs passed `name`'s suite (the last pass only, per table)."""
    path = _ledger_path(cfg, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"inputs": inputs, "run_id": run.run_id, "min_row_count": min_row_count, "evaluated": result.evaluated,
             "warnings": result.warnings, "validated_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
    scratch.replace(path)


def _earlier_pass(cfg: Config, name: str, inputs: dict, min_row_count: int) -> dict | None:
    """The recorded pass of exactly these inputs at a row floor at least as strict, if any."""
    try:
        entry = json.loads(_ledger_path(cfg, name).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    same = entry.get("inputs") == inputs and None not in inputs["tables"].values()
    return entry if same and entry.get("min_row_count", -1) >= min_row_count else None


def audit(spark: SparkSession, cfg: Config, name: str, previous_version: int | None,
          run: RunContext, reuse_passed: bool = False) -> quality.QualityResult:
    """Run `name`'s quality suite on its current version, with row-count sanity against `previous_version`.

    With reuse_passed, a version whose suite already passed on the same inputs (the table and every
    table its queries read at the same versions, the same suite file) is not validated again: Delta
    versions never change, so the verdict could not either.
    """
    previous_rows = 0 if previous_version is None else io.read(spark, cfg, name, version=previous_version).count()
    floor = math.floor(previous_rows * cfg.quality.min_row_ratio_vs_previous)
    inputs = _gate_inputs(spark, cfg, name)
    earlier = _earlier_pass(cfg, name, inputs, floor) if reuse_passed else None
    if earlier is not None:
        summary = (f"quality {name} (run {run.run_id}): PASSED, unchanged since run {earlier['run_id']} passed "
                   f"its {earlier['evaluated']} expectations ({len(earlier['warnings'])} warnings); not run again")
        log.info("%s", summary)
        return quality.QualityResult(table=name, success=True, evaluated=earlier["evaluated"], critical_failures=[],
                                     warnings=list(earlier["warnings"]), summary=summary, data_docs_index=None)
    io.register_catalog(spark, cfg, quality.referenced_tables(quality.load_suite(name)))
    # The version stamped in `inputs`, not whatever is current by the time GX reads it.
    version = inputs["tables"][name]["version"] if inputs["tables"][name] else None
    result = quality.validate(
        io.read(spark, cfg, name, version=version), name,
        quality_root=cfg.path(cfg.lakehouse.quality), run_id=run.run_id,
        parameters={"min_row_count": floor}, build_docs=False,
    )
    if result.success:
        _record_pass(cfg, name, inputs, run, result, floor)
    return result


def check_batch(spark: SparkSession, cfg: Config, name: str, batch, run: RunContext) -> quality.QualityResult:
    """Audit-before-write for append-only tables: validate the rows about to be written, raise if critical checks fail."""
    io.register_catalog(spark, cfg, quality.referenced_tables(quality.load_suite(name)))
    result = quality.validate(
        batch, name, quality_root=cfg.path(cfg.lakehouse.quality), run_id=run.run_id,
        parameters={"min_row_count": 0}, build_docs=False,
    )
    quality.gate(result)
    return result


def has_recorded_pass(cfg: Config, name: str, stamp: dict | None) -> bool:
    """Whether the ledger records a pass of `name` at exactly the version `stamp` names."""
    try:
        entry = json.loads(_ledger_path(cfg, name).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return False
    return stamp is not None and entry.get("inputs", {}).get("tables", {}).get(name) == stamp


def _previous(version: int) -> int | None:
    return version - 1 if version > 0 else None


def audit_unvalidated(spark: SparkSession, cfg: Config, name: str, run: RunContext) -> quality.QualityResult | None:
    """Validate `name`'s current version if it has no recorded pass (committed by a run that stopped before
    its gate finished, or by an older code path); raise QualityGateError if it fails, so nothing builds on it."""
    stamp = io.version_stamp(spark, cfg, name)
    if stamp is None or has_recorded_pass(cfg, name, stamp):
        return None
    log.warning("%s: version %d has no recorded quality pass (a run stopped between its commit and its gate?); "
                "validating it before anything is written on top of it", name, stamp["version"])
    result = audit(spark, cfg, name, _previous(stamp["version"]), run)
    if not result.success:
        log.error("%s: current version %d fails its quality suite; it was committed without a gate and is not "
                  "built upon: restore a passing version or fix the input, then rerun\n%s",
                  name, stamp["version"], result.summary)
        quality.gate(result)
    return result


def _carry_pass(cfg: Config, name: str, before: dict, after: dict) -> None:
    """Move the recorded pass of version `before` to `after`, a commit that changed properties, not rows."""
    path = _ledger_path(cfg, name)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return
    if entry.get("inputs", {}).get("tables", {}).get(name) != before:
        return
    entry["inputs"]["tables"][name] = after
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
    scratch.replace(path)


def _gate_for(spark: SparkSession, cfg: Config, name: str, run: RunContext, verdict: dict) -> io.Gate:
    """The pre-commit gate of `name`: validate the state a write would commit, stop the commit if it fails."""
    def gate(state, base_version: int | None) -> None:
        previous_rows = 0 if base_version is None else io.read(spark, cfg, name, version=base_version).count()
        floor = math.floor(previous_rows * cfg.quality.min_row_ratio_vs_previous)
        inputs = _gate_inputs(spark, cfg, name)
        io.register_catalog(spark, cfg, [t for t in inputs["tables"] if t != name])
        result = quality.validate(state, name, quality_root=cfg.path(cfg.lakehouse.quality), run_id=run.run_id,
                                  parameters={"min_row_count": floor}, build_docs=False)
        faults.crash_point(f"{run.job}.during_gate", name)
        if not result.success:
            log.error("%s: quality gate failed, nothing committed; version %s stays current\n%s",
                      name, base_version, result.summary)
            quality.gate(result)
        verdict.update(base_version=base_version, inputs=inputs, result=result, floor=floor)
        faults.crash_point(f"{run.job}.before_commit", name)
    return gate


def gated_write(spark: SparkSession, cfg: Config, name: str, run: RunContext,
                write: Callable[[], io.WriteStats]) -> io.WriteStats:
    """Write-audit-publish: `write` (io.merge, replace_where or append of `name`) validates the state it would
    commit with `name`'s suite first and commits only a passing state; no failing version is ever readable.

    The current version is validated first if no pass is recorded for it. After the commit, the pass is
    recorded for the new version when Delta says the commit was based on the version validated; when
    another run committed in between, the new version is audited as it stands.
    """
    audit_unvalidated(spark, cfg, name, run)
    before = io.version_stamp(spark, cfg, name)
    if before is not None and io.ensure_properties(spark, cfg, name, run):
        _carry_pass(cfg, name, before, io.version_stamp(spark, cfg, name))
    verdict: dict = {}
    with io.gated(name, _gate_for(spark, cfg, name, run, verdict)):
        stats = write()
    if not stats.changed:
        return stats
    faults.crash_point(f"{run.job}.after_commit", name)
    pinned = bool(verdict) and stats.read_version == verdict["base_version"] and (
        verdict["base_version"] is not None or stats.version == 0)
    if pinned:
        inputs = verdict["inputs"]
        inputs["tables"][name] = io.version_stamp(spark, cfg, name, stats.version)
        _record_pass(cfg, name, inputs, run, verdict["result"], verdict["floor"])
        return stats
    log.warning("%s: version %d was not committed on the version its gate validated (another run committed "
                "in between); auditing the table as it stands now", name, stats.version)
    result = audit(spark, cfg, name, _previous(stats.version), run)
    if not result.success:
        log.error("%s: version %d fails its quality suite after a concurrent commit\n%s", name, stats.version,
                  result.summary)
        quality.gate(result)
    return stats


def emit(summary: dict) -> None:
    """Print a job's summary as one JSON line on stdout, for schedulers and scripts."""
    sys.stdout.write(json.dumps(summary, default=str, sort_keys=True) + "\n")
