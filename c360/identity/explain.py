"""`c360 identity explain`: why a record belongs to its customer - the Splink waterfall of each pair, as text."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from splink import Linker
from splink.internals.waterfall_chart import records_to_waterfall_data

from c360 import io
from c360.config import Config
from c360.identity import matching, model, store
from c360.identity.backend import open_backend
from c360.identity.conf import IdentityConf, load_identity_conf
from c360.identity.features import SPLINK_COLUMNS, build_match_records

log = logging.getLogger(__name__)
MAX_MEMBERS = 50


class ExplainError(ValueError):
    """The record cannot be explained (unknown, not resolved yet, no model); the message says which."""


@dataclass
class Step:
    """One bar of a waterfall: a comparison, the level the pair fell in, and its match weight."""

    comparison: str
    level: str
    value_l: str
    value_r: str
    match_weight: float
    tf_adjustment: float | None


@dataclass
class PairExplanation:
    """How the explained record compares with one other record of its customer."""

    other: str
    match_probability: float
    match_weight: float
    steps: list[Step]
    rules: list[str] = field(default_factory=list)


@dataclass
class Explanation:
    """A record's customer, how the record was linked, and the waterfall against each other member."""

    record: str
    customer_id: str
    match_rule: str
    match_probability: float | None
    model_version: str
    pairs: list[PairExplanation]
    review: list[dict]
    chart: str | None = None


def _xref_row(spark: SparkSession, cfg: Config, record: str):
    system, _, record_id = record.partition(":")
    if not record_id:
        raise ExplainError(f"record must be SYSTEM:RECORD_ID, got {record!r}")
    if not io.exists(spark, cfg, "silver.customer_xref"):
        raise ExplainError("silver.customer_xref does not exist yet; run `c360 resolve` first")
    xref = io.read(spark, cfg, "silver.customer_xref")
    row = xref.filter((F.col("source_system") == system) & (F.col("source_record_id") == record_id)).first()
    if row is None:
        raise ExplainError(f"{record} is not in silver.customer_xref (unknown record, or not resolved yet)")
    members = xref.filter(F.col("customer_id") == row.customer_id).select(
        F.concat_ws(":", "source_system", "source_record_id").alias("unique_id")).limit(MAX_MEMBERS)
    return row, members


def _tf_tables(match: DataFrame) -> dict[str, DataFrame]:
    """Term frequencies over all current records, so a small explain linker weighs values as the run did."""
    total = match.count()
    return {c: match.filter(F.col(c).isNotNull()).groupBy(c).agg((F.count("*") / F.lit(total)).alias(f"tf_{c}"))
            for c in model.TF_COLUMNS}


def _steps(record: dict, settings_obj) -> list[Step]:
    """Waterfall bars of one scored pair; a term-frequency bar is folded into its comparison's step."""
    steps: list[Step] = []
    for bar in records_to_waterfall_data([record], settings_obj, False):
        weight = float(bar["log2_bayes_factor"] or 0.0)
        if bar["column_name"] == "Final score":
            continue
        if bar["term_frequency_adjustment"] and steps:
            steps[-1].tf_adjustment = weight
            continue
        steps.append(Step(bar["column_name"], str(bar["label_for_charts"]), str(bar.get("value_l") or ""),
                          str(bar.get("value_r") or ""), weight, None))
    return steps


def _score_members(spark: SparkSession, conf: IdentityConf, trained: dict, match: DataFrame, members: DataFrame,
                   record: str, chart: str | None) -> tuple[list[dict], object]:
    """Score every pair between the record and the other members in a small DuckDB linker."""
    be = open_backend(spark, conf, "duckdb")
    try:
        settings = model.settings_for(trained, conf, be.dialect, retain_intermediate=True)
        settings["blocking_rules_to_generate_predictions"] = [
            {"blocking_rule": f"l.unique_id = '{record}' or r.unique_id = '{record}'", "sql_dialect": "duckdb"}]
        rows = match.join(members, on="unique_id", how="left_semi").select(*SPLINK_COLUMNS)
        linker = Linker(be.register(rows), settings, log_level=logging.WARNING)
        for column, table in _tf_tables(match).items():
            linker.table_management.register_term_frequency_lookup(be.register(table), column)
        records = linker.inference.predict(warning_mode="never").as_record_list()
        if chart and records:
            linker.visualisations.waterfall_chart(records, filter_nulls=False).save(chart, overwrite=True)
        return records, linker._settings_obj
    finally:
        be.close()


def explain_record(spark: SparkSession, cfg: Config, record: str, chart: str | None = None) -> Explanation:
    """Explain the customer of SYSTEM:RECORD_ID: each comparison's level and match weight against its co-members."""
    conf = load_identity_conf(cfg)
    row, members = _xref_row(spark, cfg, record)
    stored = store.ModelStore(spark, conf.model.store).latest()
    if stored is None:
        raise ExplainError(f"no trained model under {conf.model.store}; run `c360 resolve` first")
    match = build_match_records(io.read(spark, cfg, "silver.customer_records"),
                                io.read(spark, cfg, "silver.accounts"), conf.nicknames,
                                conf.crowded_values).persist()
    try:
        scored, settings_obj = _score_members(spark, conf, stored.settings, match, members, record, chart)
        member_rows = match.join(members, on="unique_id", how="left_semi")
        rules = matching.deterministic_edges(member_rows, conf.deterministic_rules.enabled()).collect()
    finally:
        match.unpersist()
    pairs = []
    for rec in sorted(scored, key=lambda r: -r["match_weight"]):
        other = rec["unique_id_r"] if rec["unique_id_l"] == record else rec["unique_id_l"]
        linked = [e.rule for e in rules if {e.unique_id_l, e.unique_id_r} == {record, other}]
        pairs.append(PairExplanation(other, float(rec["match_probability"]), float(rec["match_weight"]),
                                     _steps(rec, settings_obj), linked))
    review_rows = []
    if io.exists(spark, cfg, "silver.identity_review"):
        review_rows = [r.asDict() for r in io.read(spark, cfg, "silver.identity_review").filter(
            (F.col("unique_id_l") == record) | (F.col("unique_id_r") == record)).collect()]
    return Explanation(record, row.customer_id, row.match_rule, row.match_probability, stored.version, pairs,
                       review_rows, chart if scored else None)


def render(explanation: Explanation) -> list[str]:
    """The explanation as lines of text: a waterfall per pair, strongest first."""
    e = explanation
    probability = "-" if e.match_probability is None else f"{e.match_probability:.4f}"
    lines = [f"{e.record} -> customer {e.customer_id} (linked by {e.match_rule}, p={probability}, model {e.model_version})"]
    if not e.pairs:
        lines.append("  no other record belongs to this customer")
    for pair in e.pairs:
        rules = f"; deterministic: {', '.join(pair.rules)}" if pair.rules else ""
        lines.append(f"  vs {pair.other}: match weight {pair.match_weight:+.2f}, probability {pair.match_probability:.4f}{rules}")
        for step in pair.steps:
            tf = f" (term frequency {step.tf_adjustment:+.2f})" if step.tf_adjustment else ""
            values = f": {step.value_l!r} vs {step.value_r!r}" if step.comparison != "Prior" else ""
            lines.append(f"      {step.comparison:12} {step.match_weight:+7.2f}  {step.level}{values}{tf}")
    for r in e.review:
        lines.append(f"  review: {r['unique_id_l']} ~ {r['unique_id_r']} p={r['match_probability']:.4f} {r['status']}")
    if e.chart:
        lines.append(f"  waterfall chart: {e.chart}")
    return lines
