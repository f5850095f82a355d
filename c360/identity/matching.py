"""Candidate pairs: deterministic rules (Spark equi-joins) and Splink scoring (full, or new records against existing)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from splink import Linker

from c360.identity.backend import Backend
from c360.identity.conf import DETERMINISTIC_RULES
from c360.identity.features import SPLINK_COLUMNS
from c360.identity.model import TF_COLUMNS

log = logging.getLogger(__name__)

PAIR_SCHEMA = T.StructType([
    T.StructField("unique_id_l", T.StringType()), T.StructField("unique_id_r", T.StringType()),
    T.StructField("match_probability", T.DoubleType()), T.StructField("match_weight", T.DoubleType()),
])
EDGE_COLUMNS = ("unique_id_l", "unique_id_r", "match_probability", "rule", "strength")
# How firmly an edge holds records together when a never-match decision forces a cut (strongest
# kept first): clusters kept from the previous run (they already honoured every constraint), steward
# decisions, deterministic rules, then the model's match weight (model_strength).
STRENGTH = {"existing": 5.0, "override": 4.0, "review": 3.5, "deterministic": 3.0}


def model_strength(match_weight: Column) -> Column:
    """Strength of a model link: its match weight in hundreds of bits, below every rule-based link."""
    return F.least(F.greatest(match_weight / 100.0, F.lit(0.0)), F.lit(0.99))


@dataclass
class Scored:
    """Scored candidate pairs of one run: those at or above the review band, and how many were compared."""

    pairs: DataFrame
    comparisons: int
    histogram: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def _ordered(left: Column, right: Column) -> list[Column]:
    """A pair with the smaller id on the left, so each undirected pair has one spelling."""
    return [F.least(left, right).alias("unique_id_l"), F.greatest(left, right).alias("unique_id_r")]


def _star(df: DataFrame, group: list[str], rule: str) -> DataFrame:
    """Records sharing `group` values -> edges from each to the group's smallest id (n-1 edges, not n^2)."""
    grouped = df
    for c in group:
        grouped = grouped.filter(F.col(c).isNotNull())
    whole_group = Window.partitionBy(*group).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    hub = grouped.withColumn("_hub", F.min("unique_id").over(whole_group))
    return hub.filter(F.col("unique_id") != F.col("_hub")).select(
        *_ordered(F.col("_hub"), F.col("unique_id")), F.lit(rule).alias("rule"))


def deterministic_edges(match: DataFrame, rules: tuple[str, ...]) -> DataFrame:
    """Pairs that are the same person by rule: national id, e-mail + birth date, shared card hash, CRM->core link."""
    parts = []
    if "national_id" in rules:
        parts.append(_star(match, ["national_id"], "deterministic:national_id"))
    if "email_dob" in rules:
        parts.append(_star(match, ["email", "dob"], "deterministic:email_dob"))
    if "card_hash" in rules:
        cards = match.select("unique_id", F.explode_outer("card_hashes").alias("card_hash"))
        parts.append(_star(cards, ["card_hash"], "deterministic:card_hash"))
    if "crm_core_link" in rules:
        known = match.select(F.col("unique_id").alias("_target"))
        links = match.filter(F.col("linked_core_uid").isNotNull()).join(
            known, on=F.col("linked_core_uid") == F.col("_target"), how="inner")
        parts.append(links.select(*_ordered(F.col("unique_id"), F.col("_target")),
                                  F.lit("deterministic:crm_core_link").alias("rule")))
    empty = match.sparkSession.createDataFrame([], "unique_id_l string, unique_id_r string, rule string")
    edges = empty
    for part in parts:
        edges = edges.unionByName(part)
    # One edge per pair, named by the first rule that found it in DETERMINISTIC_RULES order.
    order = F.lit(len(DETERMINISTIC_RULES))
    for i, name in reversed(list(enumerate(DETERMINISTIC_RULES))):
        order = F.when(F.col("rule") == f"deterministic:{name}", F.lit(i)).otherwise(order)
    first = Window.partitionBy("unique_id_l", "unique_id_r").orderBy(order).rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    return edges.withColumn("_n", F.row_number().over(first)).filter(F.col("_n") == 1).select(
        "unique_id_l", "unique_id_r", F.lit(1.0).alias("match_probability"), "rule",
        F.lit(STRENGTH["deterministic"]).alias("strength"))


def _histogram(predictions) -> dict[str, int]:
    """Count of scored pairs per match-probability decile ("0.0" = [0, 0.1), ..., "0.9" = [0.9, 1])."""
    rows = predictions.query_sql(
        "select least(floor(match_probability * 10), 9) as bucket, count(*) as pairs from {this} group by 1"
    ).as_record_list()
    return {f"{int(r['bucket']) / 10:.1f}": int(r["pairs"]) for r in rows}


def _keep(backend: Backend, predictions, low: float) -> DataFrame:
    """Scored pairs at or above `low`, in Spark, smaller id on the left."""
    kept = predictions.query_sql(
        "select unique_id_l, unique_id_r, match_probability, match_weight from {this} "
        f"where match_probability >= {float(low)}")
    pairs = backend.to_spark(kept, PAIR_SCHEMA)
    return pairs.select(*_ordered(F.col("unique_id_l"), F.col("unique_id_r")), "match_probability", "match_weight")


def count_rows(sdf) -> int:
    """Rows of a Splink table, counted in its backend."""
    return int(sdf.query_sql("select count(*) as n from {this}").as_record_list()[0]["n"])


def score_all(backend: Backend, linker: Linker, low: float) -> Scored:
    """Block and score every candidate pair of the linker's records (a full relink)."""
    started = time.perf_counter()
    blocked = linker.inference.compute_blocked_pairs_for_predict()
    comparisons = count_rows(blocked)
    blocking_seconds = time.perf_counter() - started
    log.info("identity: %d comparisons from blocking (%.1fs)", comparisons, blocking_seconds)
    started = time.perf_counter()
    predictions = linker.inference.predict(warning_mode="never")
    histogram = _histogram(predictions)
    pairs = _keep(backend, predictions, low).persist()
    pairs.count()
    predictions.drop_table_from_database_and_remove_from_cache()
    return Scored(pairs, comparisons, histogram,
                  {"blocking": blocking_seconds, "prediction": time.perf_counter() - started})


def score_incremental(backend: Backend, linker: Linker, existing: DataFrame, changed: DataFrame,
                      low: float) -> Scored:
    """Score new or changed records among themselves and against existing records (not existing x existing)."""
    started = time.perf_counter()
    for column in TF_COLUMNS:
        # Term frequencies come from all current records, not only from the changed ones.
        linker.table_management.compute_tf_table(column)
    existing_sdf = backend.register(existing.select(*SPLINK_COLUMNS))
    changed_sdf = backend.register(changed.select(*SPLINK_COLUMNS))
    within = linker.inference.predict_within(changed_sdf, warning_mode="never")
    between = linker.inference.predict_between(existing_sdf, changed_sdf, warning_mode="never")
    comparisons = count_rows(within) + count_rows(between)
    histogram: dict[str, int] = {}
    pairs = None
    for predictions in (within, between):
        for bucket, n in _histogram(predictions).items():
            histogram[bucket] = histogram.get(bucket, 0) + n
        kept = _keep(backend, predictions, low)
        pairs = kept if pairs is None else pairs.unionByName(kept)
    pairs = pairs.persist()
    pairs.count()
    log.info("identity: %d comparisons for changed records", comparisons)
    return Scored(pairs, comparisons, histogram, {"blocking": 0.0, "prediction": time.perf_counter() - started})
