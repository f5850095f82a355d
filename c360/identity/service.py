"""The identity service: read silver records and the previous state, link them, publish the identity tables
behind their quality gates, and report the run (JSON beside the models, and MLflow).

`jobs/resolve_identity.py` (spark-submit), `c360 resolve` and the demo call `run_resolution`. Evaluation
against the generator's truth is not part of a run: it is `c360.identity.evaluation.evaluate`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from c360 import io, pipeline
from c360 import profile as job_profile
from c360.config import Config
from c360.identity import evaluation, linking, review, store
from c360.identity import profile as profiling
from c360.identity.backend import open_backend
from c360.identity.conf import IdentityConf, load_identity_conf
from c360.identity.features import SPLINK_COLUMNS, build_match_records
from c360.identity.linking import JOB, RECORDS, Linked, LinkInputs, materialise
from c360.identity.tables import EVENTS, GOLDEN, REVIEW, XREF, Tables, build_tables
from c360.run import RunContext

log = logging.getLogger(__name__)
ACCOUNTS = "silver.accounts"
__all__ = ["JOB", "RECORDS", "ACCOUNTS", "XREF", "EVENTS", "REVIEW", "GOLDEN", "ResolutionReport", "Inputs",
           "read_inputs", "link_records", "run_resolution", "train_model", "match_records",
           "profile_match_records"]


@dataclass
class ResolutionReport:
    """What one resolution run did (also logged to MLflow and kept as JSON); accuracy is not part of it."""

    run_id: str
    run_date: dt.date
    mode: str
    backend: str
    model_version: str
    trained: bool
    comparisons: int
    statistics: dict
    histogram: dict
    events: dict
    review_pending: int
    seconds: dict = field(default_factory=dict)
    writes: dict = field(default_factory=dict)
    # Fill rate and distinct share of each comparison field per source system (c360.identity.profile).
    profile: dict = field(default_factory=dict)
    # When this run trained: comparisons, EM passes run and skipped, the prior and where it came from.
    training: dict | None = None

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


# ---- inputs -------------------------------------------------------------------------------

@dataclass
class Inputs:
    """What a resolution run reads: source records, their match form and its profile, the previous xref
    (checkpointed), review queue and golden records, and steward decisions."""

    records: DataFrame
    match: DataFrame
    previous: DataFrame | None
    review: DataFrame | None
    golden: DataFrame
    decisions: DataFrame
    profile: dict = field(default_factory=dict)
    previous_models: frozenset[str] = frozenset()

    def for_linking(self) -> LinkInputs:
        """The part of the inputs linking reads."""
        return LinkInputs(self.match, self.previous, self.decisions, self.profile, self.previous_models)

    def release(self) -> None:
        """Drop what reading materialised (checkpoints go with their last reference)."""
        for frame in (self.match, self.decisions, self.previous):
            if frame is not None:
                frame.unpersist()


def _accounts(spark: SparkSession, cfg: Config) -> DataFrame:
    """silver.accounts, or no rows when it is not built (a bank conforming only its customer records)."""
    if io.exists(spark, cfg, ACCOUNTS):
        return io.read(spark, cfg, ACCOUNTS)
    return spark.createDataFrame([], io.schema_of(io.spec(cfg, ACCOUNTS)))


def _previous_xref(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The xref as the previous run left it, keyed by unique_id (None before the first run)."""
    if not io.exists(spark, cfg, XREF):
        return None
    # A checkpoint (linking.materialise): events compare against the previous xref after this run
    # has rewritten it.
    return materialise(io.read(spark, cfg, XREF).select(
        F.concat_ws(":", "source_system", "source_record_id").alias("unique_id"), "customer_id",
        "identity_fingerprint", "model_version", "match_rule", "match_probability"))


def read_inputs(spark: SparkSession, cfg: Config, conf: IdentityConf) -> Inputs:
    """Read and shape the run's inputs (match records, decisions and the previous xref materialised)."""
    records = io.read(spark, cfg, RECORDS)
    match = materialise(build_match_records(records, _accounts(spark, cfg), conf.nicknames, conf.crowded_values))
    profile = profiling.profile_records(match)
    for line in profiling.render(profile):
        log.info("identity profile: %s", line)
    previous = _previous_xref(spark, cfg)
    models = frozenset() if previous is None else frozenset(
        r.model_version for r in previous.select("model_version").distinct().collect())
    review_table = io.read(spark, cfg, REVIEW) if io.exists(spark, cfg, REVIEW) else None
    golden = (io.read(spark, cfg, GOLDEN) if io.exists(spark, cfg, GOLDEN)
              else spark.createDataFrame([], io.schema_of(io.spec(cfg, GOLDEN))))
    decisions = materialise(review.combine_decisions(review.read_overrides(spark, conf.overrides.file),
                                                     review.review_decisions(review_table, spark)))
    return Inputs(records, match, previous, review_table, golden, decisions, profile, models)


def match_records(spark: SparkSession, cfg: Config, conf: IdentityConf) -> DataFrame:
    """The current customer records as identity compares them: one row per record (unique_id), not persisted."""
    return build_match_records(io.read(spark, cfg, RECORDS), _accounts(spark, cfg), conf.nicknames,
                               conf.crowded_values)


def profile_match_records(spark: SparkSession, cfg: Config, conf: IdentityConf) -> dict:
    """Profile of the current customer records as identity sees them (the `c360 identity profile` command)."""
    return profiling.profile_records(match_records(spark, cfg, conf))


# ---- linking ------------------------------------------------------------------------------

def link_records(spark: SparkSession, conf: IdentityConf, run: RunContext, inputs: Inputs, full_relink: bool = False,
                 retrain: bool = False) -> Linked:
    """Score and cluster the inputs' records on conf's backend (no table is written)."""
    return linking.link(spark, conf, run, inputs.for_linking(), full_relink or retrain, retrain)


def train_model(spark: SparkSession, cfg: Config, run: RunContext, conf: IdentityConf) -> store.StoredModel:
    """Train a new model version on the current records and store it (the explicit retraining command)."""
    match = match_records(spark, cfg, conf).persist()
    resolvable = match.filter(F.col("unresolvable_reason").isNull()).select(*SPLINK_COLUMNS).persist()
    be = open_backend(spark, conf)
    try:
        profile = profiling.profile_records(match)
        registered = be.register(resolvable)
        n_records = linking.matching.count_rows(registered)
        linking.check_resolvable(n_records)
        stored, _, _ = linking.trained_model(spark, be, conf, registered, n_records, True, run, profile)
    finally:
        be.close()
        resolvable.unpersist()
        match.unpersist()
    return stored


# ---- publishing and reporting ---------------------------------------------------------------

def write_tables(spark: SparkSession, cfg: Config, run: RunContext, tables: Tables) -> dict[str, io.WriteStats]:
    """Merge each output table behind its quality gate, in dependency order (xref first)."""
    results = {}
    prof = job_profile.current()
    for name, frame in tables.frames.items():
        # Every identity table is merged without deleting the rows a frame lacks, so an empty frame would
        # change nothing: it is not written at all (no change check, gate or history read, e.g. for a
        # day without identity events or golden changes).
        if tables.is_empty(name):
            results[name] = io.WriteStats(name, None)
            log.info("%s: nothing to merge", name)
            continue
        with prof.phase("write", name):
            stats = pipeline.gated_write(spark, cfg, name, run, lambda: io.merge(spark, cfg, name, frame, run))
        results[name] = stats
        log.info("%s: version %s, +%d ~%d -%d", name, stats.version, stats.inserted, stats.updated, stats.deleted)
    return results


def _log_run(conf: IdentityConf, report: ResolutionReport) -> None:
    """One MLflow run per resolution run: parameters, run metrics, seconds per phase, the report."""
    metrics = {**report.statistics, "comparisons": report.comparisons, "review_pending": report.review_pending,
               **{f"seconds_{k}": v for k, v in report.seconds.items()},
               **{f"pairs_p{k}": v for k, v in report.histogram.items()},
               **{f"events_{k}": v for k, v in report.events.items()}}
    if report.training is not None:
        metrics["probability_two_random_records_match"] = report.training["prior"]
    store.log_to_mlflow(
        conf, f"resolve {report.run_date} {report.mode}",
        params={"mode": report.mode, "backend": report.backend, "model_version": report.model_version,
                "match_threshold": conf.match_threshold, "review_band": f"{conf.review_band.low}-{conf.review_band.high}",
                "run_date": report.run_date},
        metrics=metrics, artifacts={"resolution_report.json": json.dumps(report.as_dict(), indent=2, default=str)},
        tags={"c360.job": JOB, "c360.kind": "identity_run", "c360.run_id": report.run_id})


def _report(run: RunContext, conf: IdentityConf, inputs: Inputs, linked: Linked, tables: Tables,
            writes: dict[str, io.WriteStats], seconds: dict) -> ResolutionReport:
    """The run's report from what linking, table building and the writes did."""
    report = ResolutionReport(
        run_id=run.run_id, run_date=run.run_date, mode=linked.mode, backend=conf.backend,
        model_version=linked.model_version, trained=linked.trained, comparisons=linked.scored.comparisons,
        statistics=evaluation.run_statistics(tables.customer_of), histogram=linked.scored.histogram,
        events=tables.events, review_pending=tables.review_statuses.get("pending", 0), seconds=seconds,
        writes={n: {"version": s.version, "inserted": s.inserted, "updated": s.updated, "deleted": s.deleted}
                for n, s in writes.items()},
        profile=inputs.profile, training=linked.training)
    report.seconds["total"] = sum(report.seconds.values())
    return report


def run_resolution(spark: SparkSession, cfg: Config, run: RunContext, full_relink: bool = False,
                   retrain: bool = False, backend: str | None = None) -> ResolutionReport:
    """Resolve every current source record to a stable customer id and publish xref, events, review and golden."""
    conf = load_identity_conf(cfg, **({"backend": backend} if backend else {}))
    prof = job_profile.start(JOB, run.run_id, spark)
    inputs = linked = tables = None
    try:
        with prof.phase("read") as read_phase:
            inputs = read_inputs(spark, cfg, conf)
        linked = link_records(spark, conf, run, inputs, full_relink, retrain)
        with prof.phase("tables") as tables_phase:
            tables = build_tables(spark, conf, run, inputs.records, inputs.match, inputs.previous, inputs.review,
                                  inputs.golden, inputs.decisions, linked)
        with prof.phase("writes") as writes_phase:
            writes = write_tables(spark, cfg, run, tables)
        with prof.phase("report"):
            seconds = {"features": read_phase.seconds, **linked.seconds, "tables": tables_phase.seconds,
                       "writes": writes_phase.seconds}
            report = _report(run, conf, inputs, linked, tables, writes, seconds)
            store.save_report(spark, conf, run.run_id, run.run_date, report.as_dict())
            _log_run(conf, report)
    finally:
        # Released whatever happened: a long-lived session (tests, notebooks, the demo) runs many resolutions.
        for part in (tables, linked, inputs):
            if part is not None:
                part.release()
    prof.save(cfg)
    return report

