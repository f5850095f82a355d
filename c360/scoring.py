"""Batch scoring: every enabled model's champion scores the run date's features into gold.scores, with reasons.

Each model's rows for the date are merged on (model, entity_id, as_of_date) with change detection, so
a rerun with the same champion and features commits nothing; a new champion or changed features
update the rows, and Delta history keeps what was said before. A model whose kill switch (or whose
purpose's) is on, or that has no champion, is skipped with the reason in the log and the summary.
"""

from __future__ import annotations

import logging

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from c360 import features, io, modeling, pipeline
from c360.config import Config
from c360.errors import UserError
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "score_models"
SCORES = "gold.scores"
MONITORING = "ops.model_monitoring"
REASON_SLOTS = 3
# Columns that say which run wrote a row rather than what it says: left out of change detection.
UNHASHED = ("scored_run_id", "scored_at")


def consented(frame: pd.DataFrame, purpose: str) -> pd.DataFrame:
    """The rows whose purposes_allowed (consent on the as-of date) include `purpose`."""
    allowed = frame[modeling.CONSENT_COLUMN].map(lambda p: purpose in list(p if p is not None else []))
    return frame[allowed]


def build_scores(scored: pd.DataFrame, spec, run: RunContext, spark: SparkSession, cfg: Config) -> DataFrame:
    """gold.scores rows (contract order, record_hash) from the models package's scored frame."""
    out = scored.rename(columns={spec.entity: "entity_id", spec.as_of: "as_of_date"})
    out["entity"], out["purpose"] = spec.entity, spec.purpose
    for k in range(spec.reasons_top + 1, REASON_SLOTS + 1):
        out[f"reason_{k}"] = out[f"reason_{k}_value"] = out[f"reason_{k}_text"] = None
        out[f"reason_{k}_contribution"] = float("nan")
    # Timestamps go in as a Spark literal: pandas would hand createDataFrame its own Timestamp type.
    out["scored_run_id"], out["scored_at"], out["record_hash"] = run.run_id, None, None
    table = io.spec(cfg, SCORES)
    columns = list(table.columns)
    frame = (spark.createDataFrame(out[columns].astype(object).where(out[columns].notna(), None), io.schema_of(table))
             .withColumn("scored_at", F.lit(run.started_at).cast("timestamp")).drop("record_hash"))
    hashed = [c for c in frame.columns if c not in (*table.keys, *UNHASHED)]
    return frame.withColumn("record_hash", io.row_hash(hashed)).select(*columns)


def score(spark: SparkSession, cfg: Config, run: RunContext, names: list[str] | None = None) -> dict[str, str]:
    """Score the run date's features.customer_daily with each model's champion; returns model -> what happened."""
    from models.spec import load_specs

    specs = load_specs(cfg.conf_dir / "models.yaml")
    registry = modeling.model_registry(cfg)
    descriptions = {f.name: f.description for f in features.load_registry(cfg.conf_dir).features.values()}
    day = run.run_date
    outcome = {}
    for name in names or sorted(specs):
        spec = specs[name]
        if spec.reasons_top > REASON_SLOTS:
            raise UserError(f"model {name}: reasons.top {spec.reasons_top} exceeds gold.scores' {REASON_SLOTS} slots")
        usable, why = registry.is_usable(name, spec.purpose)
        if not usable:
            log.warning("score %s: skipped: %s", name, why)
            outcome[name] = f"skipped: {why}"
            continue
        champion = registry.champion(name)
        source = spec.feature_table or features.CUSTOMER_DAILY
        columns = list(dict.fromkeys([spec.entity, spec.as_of, *spec.features, modeling.CONSENT_COLUMN]))
        rows = io.read(spark, cfg, source).filter(F.col(spec.as_of) == F.lit(day)).select(*columns).toPandas()
        frame = consented(rows, spec.purpose).reset_index(drop=True)
        log.info("score %s v%s: %d of %d customers have consent for %s on %s", name, champion.version, len(frame),
                 len(rows), spec.purpose, day)
        model = registry.load_version(name, champion.version)
        out = _scored(spec, model, frame, descriptions)
        scores = build_scores(out, spec, run, spark, cfg)
        stats = pipeline.gated_write(spark, cfg, SCORES, run, lambda: io.merge(
            spark, cfg, SCORES, scores, run,
            retract_where=f"model = '{name}' AND as_of_date = DATE'{day.isoformat()}'"))
        drifted = monitor(spark, cfg, run, spec, model, frame, out)
        outcome[name] = (f"v{champion.version}: {len(out)} scored, "
                         + ("unchanged" if not stats.changed else f"gold.scores v{stats.version} "
                            f"+{stats.inserted} ~{stats.updated} -{stats.deleted}")
                         + (f"; drift warning: {', '.join(drifted)}" if drifted else ""))
        log.info("score %s: %s", name, outcome[name])
    return outcome


def monitor(spark: SparkSession, cfg: Config, run: RunContext, spec, model, frame: pd.DataFrame,
            scored: pd.DataFrame) -> list[str]:
    """PSI of each feature and of the score against the champion's training sample, merged into
    ops.model_monitoring; returns the features at or above the spec's warning level (logged as warnings)."""
    from models.monitoring import drift_report, load_reference
    from models.train import REFERENCE_SCORE

    registry = modeling.model_registry(cfg)
    reference = load_reference(registry.client, model.run_id)
    if reference is None:
        log.warning("score %s v%s: no drift reference in its training run %s (retrain to monitor drift)", spec.name,
                    model.version, model.run_id)
        return ["(no drift reference: retrain)"]
    report = drift_report(spec, reference, frame, reference[REFERENCE_SCORE].to_numpy(), scored["score"].to_numpy())
    rows = [(spec.name, str(model.version), run.run_date, r.feature, float(r.psi), float(spec.drift.psi_warning),
             bool(r.warning), len(reference), len(frame), run.run_id) for r in report.itertuples(index=False)]
    table = io.spec(cfg, MONITORING)
    frame_out = spark.createDataFrame(rows, "model string, model_version string, as_of_date date, feature string, "
                                            "psi double, threshold double, warning boolean, rows_reference long, "
                                            "rows_scored long, run_id string")
    frame_out = (frame_out.withColumn("psi", F.round("psi", 6))
                 .withColumn("checked_at", F.lit(run.started_at).cast("timestamp"))
                 .withColumn("record_hash", io.row_hash(["psi", "threshold", "warning", "rows_reference",
                                                         "rows_scored"]))
                 .select(*table.columns))
    pipeline.gated_write(spark, cfg, MONITORING, run, lambda: io.merge(spark, cfg, MONITORING, frame_out, run))
    drifted = [r.feature for r in report.itertuples(index=False) if r.warning]
    for r in report.itertuples(index=False):
        if r.warning:
            log.warning("score %s v%s: %s drifted from training: PSI %.3f >= %.2f", spec.name, model.version,
                        r.feature, r.psi, spec.drift.psi_warning)
    return drifted


def _scored(spec, model, frame: pd.DataFrame, descriptions: dict[str, str]) -> pd.DataFrame:
    from models.scoring import score_frame

    if frame.empty:
        raise UserError(f"model {spec.name}: no customer to score on this date (features missing or no consent)")
    return score_frame(spec, model, frame, descriptions=descriptions)

