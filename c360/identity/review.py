"""Human review: steward overrides (always/never-match pairs) and the grey-band review queue with its decisions."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from c360 import io, pipeline
from c360.identity import store

REVIEW = "silver.identity_review"
STATUSES = ("pending", "accepted", "rejected")
DECISIONS = ("match", "no_match")
OVERRIDE_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in
                                ("record_l", "record_r", "decision", "reason", "decided_by")])
DECISION_COLUMNS = ["unique_id_l", "unique_id_r", "decision", "source", "decided_by"]


class ReviewError(ValueError):
    """A review decision names pairs the review queue does not hold."""


class OverrideError(ValueError):
    """The overrides file has a row that is not a valid decision; the message names the row."""


def _ordered(left: Column, right: Column) -> list[Column]:
    return [F.least(left, right).alias("unique_id_l"), F.greatest(left, right).alias("unique_id_r")]


def read_overrides(spark: SparkSession, path: str) -> DataFrame:
    """Steward decisions from the overrides CSV (none when the file is absent), as ordered record pairs."""
    if not store.exists(spark, path):
        return spark.createDataFrame([], ", ".join(f"{c} string" for c in DECISION_COLUMNS))
    raw = spark.read.csv(path, header=True, schema=OVERRIDE_SCHEMA, comment="#")
    decision = F.lower(F.trim("decision"))
    bad = raw.filter(~decision.isin(*DECISIONS) | ~F.col("record_l").contains(":") | ~F.col("record_r").contains(":")
                     | F.col("decision").isNull()).limit(3).collect()
    if bad:
        raise OverrideError(f"{path}: rows need record_l and record_r as SYSTEM:RECORD_ID and decision in "
                            f"{DECISIONS}; first bad rows: {[r.asDict() for r in bad]}")
    return raw.select(*_ordered(F.trim("record_l"), F.trim("record_r")), decision.alias("decision"),
                      F.lit("override").alias("source"), F.col("decided_by"))


def review_decisions(review: DataFrame | None, spark: SparkSession) -> DataFrame:
    """Accepted and rejected review pairs as decisions (accepted = match, rejected = no_match)."""
    if review is None:
        return spark.createDataFrame([], ", ".join(f"{c} string" for c in DECISION_COLUMNS))
    decided = review.filter(F.col("status").isin("accepted", "rejected"))
    return decided.select("unique_id_l", "unique_id_r",
                          F.when(F.col("status") == "accepted", "match").otherwise("no_match").alias("decision"),
                          F.lit("review").alias("source"), "decided_by")


def combine_decisions(overrides: DataFrame, reviewed: DataFrame) -> DataFrame:
    """One decision per pair: the overrides file wins over a review decision on the same pair."""
    first = Window.partitionBy("unique_id_l", "unique_id_r").orderBy(
        F.when(F.col("source") == "override", 0).otherwise(1)).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    both = overrides.unionByName(reviewed)
    return both.withColumn("_n", F.row_number().over(first)).filter(F.col("_n") == 1).drop("_n")


def build_identity_review(pairs: DataFrame, customer_of: DataFrame, previous: DataFrame | None,
                          decisions: DataFrame, low: float, high: float, run) -> DataFrame:
    """Review rows: pairs scored in the grey band, and likely pairs that conflicting identifiers kept apart.

    Earlier decisions and first-seen runs are kept; a pair in the overrides file shows its decision.
    """
    cust_l = customer_of.select(F.col("unique_id").alias("unique_id_l"), F.col("customer_id").alias("customer_id_l"))
    cust_r = customer_of.select(F.col("unique_id").alias("unique_id_r"), F.col("customer_id").alias("customer_id_r"))
    keys = ["unique_id_l", "unique_id_r"]
    p = F.col("match_probability")
    kept_apart = (p >= high) & (F.col("customer_id_l") != F.col("customer_id_r"))
    rows = (pairs.join(cust_l, on="unique_id_l", how="left").join(cust_r, on="unique_id_r", how="left")
            .filter(((p >= low) & (p < high)) | kept_apart))
    if previous is not None:
        kept = previous.select(*keys, F.col("status").alias("_status"), F.col("decided_by").alias("_by"),
                               F.col("decided_at").alias("_at"), F.col("first_seen_run_id").alias("_first"))
        rows = rows.join(kept, on=keys, how="left")
    else:
        rows = rows.select("*", *[F.lit(None).cast("string").alias(c) for c in ("_status", "_by", "_first")],
                           F.lit(None).cast("timestamp").alias("_at"))
    steward = decisions.filter(F.col("source") == "override").select(
        *keys, F.when(F.col("decision") == "match", "accepted").otherwise("rejected").alias("_override"),
        F.col("decided_by").alias("_override_by"))
    rows = rows.join(steward, on=keys, how="left")
    status = F.coalesce("_override", "_status", F.lit("pending"))
    shaped = rows.select(
        *keys, "customer_id_l", "customer_id_r", "match_probability", "match_weight", status.alias("status"),
        F.coalesce("_override_by", "_by").alias("decided_by"),
        F.when(F.col("_override").isNotNull() & F.col("_at").isNull(), F.lit(run.started_at).cast("timestamp"))
        .otherwise(F.col("_at")).alias("decided_at"),
        F.coalesce("_first", F.lit(run.run_id)).alias("first_seen_run_id"),
    )
    return shaped.withColumn("record_hash", io.row_hash(
        ["customer_id_l", "customer_id_r", "match_probability", "status", "decided_by", "decided_at"]))


def record_decisions(spark: SparkSession, cfg, run, pairs: list[tuple[str, str]], accept: bool,
                     decided_by: str) -> io.WriteStats:
    """A steward's accept/reject of review pairs, merged into silver.identity_review (honoured by the next run)."""
    if not io.exists(spark, cfg, REVIEW):
        raise ReviewError(f"{REVIEW} does not exist yet; run `c360 resolve` first")
    wanted = spark.createDataFrame([tuple(sorted(p)) for p in pairs], "unique_id_l string, unique_id_r string")
    keys = ["unique_id_l", "unique_id_r"]
    rows = io.read(spark, cfg, REVIEW).join(wanted, on=keys, how="inner").persist()
    try:
        found = {(r.unique_id_l, r.unique_id_r) for r in rows.select(*keys).collect()}
        missing = sorted({tuple(sorted(p)) for p in pairs} - found)
        if missing:
            raise ReviewError(f"not in {REVIEW}: {missing}")
        decided = rows.select(
            *keys, "customer_id_l", "customer_id_r", "match_probability", "match_weight",
            F.lit("accepted" if accept else "rejected").alias("status"), F.lit(decided_by).alias("decided_by"),
            F.lit(run.started_at).cast("timestamp").alias("decided_at"), "first_seen_run_id")
        decided = decided.withColumn("record_hash", io.row_hash(
            ["customer_id_l", "customer_id_r", "match_probability", "status", "decided_by", "decided_at"]))
        return pipeline.gated_write(spark, cfg, REVIEW, run, lambda: io.merge(spark, cfg, REVIEW, decided, run))
    finally:
        rows.unpersist()
