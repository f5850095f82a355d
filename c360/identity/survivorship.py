"""Golden records: one set of attributes per customer by survivorship rules, kept as SCD type 2 versions."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from c360 import io
from c360.identity.conf import GOLDEN_COLUMNS, AttributeRule, SurvivorshipConf

GOLDEN_KEYS = ["customer_id", "valid_from"]
GOLDEN_TABLE_COLUMNS = ["customer_id", *GOLDEN_COLUMNS, "attribute_sources", "valid_from", "valid_to", "is_current"]


def _priority(order: list[str]) -> Column:
    """Higher for preferred source systems (the first in `order` scores highest)."""
    rank = F.lit(0)
    for i, system in enumerate(reversed(order)):
        rank = F.when(F.col("source_system") == system, F.lit(i + 1)).otherwise(rank)
    return rank


def _choice_key(name: str, rule: AttributeRule, priority: Column) -> Column:
    """What max_by maximises to pick the surviving record of one attribute group (null when it has no value)."""
    lead = F.col(rule.columns[0])
    updated = F.col("source_updated_at")
    if rule.rule == "source_priority":
        key = F.struct(priority, updated)
    elif rule.rule == "most_recent_verified":
        key = F.struct((F.col(f"_support_{name}") >= rule.min_sources).alias("verified"), updated, priority)
    elif rule.rule == "most_complete":
        filled = F.length(F.concat_ws("", *[F.col(c).cast("string") for c in rule.columns]))
        key = F.struct(filled, priority, updated)
    else:  # earliest
        key = F.struct(F.datediff(F.lit(dt.date(9999, 12, 31)), lead.cast("date")), priority, updated)
    return F.when(lead.isNotNull(), key)


def build_golden_attributes(records: DataFrame, xref: DataFrame, conf: SurvivorshipConf) -> DataFrame:
    """Current source records + xref -> one row per customer_id: golden attributes and the system each came from."""
    current = records.filter(F.col("is_current")).join(
        xref.select("source_system", "source_record_id", "customer_id"),
        on=["source_system", "source_record_id"], how="inner")
    for name, rule in conf.attributes.items():
        if rule.rule == "most_recent_verified":
            # Support: how many of the customer's records hold the same value.
            holders = Window.partitionBy("customer_id", rule.columns[0]).rowsBetween(
                Window.unboundedPreceding, Window.unboundedFollowing)
            current = current.withColumn(f"_support_{name}", F.count(rule.columns[0]).over(holders))
    priority = _priority(list(conf.priority))
    picks = [
        F.max_by(F.struct(*[F.col(c) for c in rule.columns], F.col("source_system").alias("_source")),
                 _choice_key(name, rule, priority)).alias(f"_pick_{name}")
        for name, rule in conf.attributes.items()
    ]
    golden = current.groupBy("customer_id").agg(*picks)
    column_of = {c: f"_pick_{name}.{c}" for name, rule in conf.attributes.items() for c in rule.columns}
    sources = F.map_from_arrays(
        F.array(*[F.lit(name) for name in conf.attributes]),
        F.array(*[F.col(f"_pick_{name}._source") for name in conf.attributes]))
    return golden.select(
        "customer_id", *[F.col(column_of[c]).alias(c) for c in GOLDEN_COLUMNS],
        F.map_filter(sources, lambda k, v: v.isNotNull()).alias("attribute_sources"),
    )


def _attributes_hash(prefix: str = "") -> Column:
    return io.row_hash([f"{prefix}{c}" for c in GOLDEN_COLUMNS])


def build_golden_versions(golden: DataFrame, current: DataFrame, valid_from: dt.datetime) -> DataFrame:
    """SCD2 rows to merge: a new version per changed or new customer, the closed previous version, retired ids closed.

    A customer whose attributes are unchanged gets no row. A version opened by an earlier run of the
    same run date is replaced in place instead of being closed the instant it opened; a customer id
    retired on the day it was created keeps a zero-length version (valid_to = valid_from).
    """
    start = F.lit(valid_from).cast("timestamp")
    now = golden.withColumn("_h", _attributes_hash())
    before = current.filter(F.col("is_current")).withColumn("_h", _attributes_hash())
    joined = now.alias("n").join(before.alias("b"), on="customer_id", how="full_outer")
    changed = F.col("b._h").isNull() | (F.col("n._h").isNotNull() & (F.col("n._h") != F.col("b._h")))
    opened = joined.filter(F.col("n._h").isNotNull() & changed).select(
        "customer_id", *[F.col(f"n.{c}").alias(c) for c in GOLDEN_COLUMNS], F.col("n.attribute_sources"),
        start.alias("valid_from"), F.lit(None).cast("timestamp").alias("valid_to"), F.lit(True).alias("is_current"))
    superseded = F.col("b._h").isNotNull() & F.col("n._h").isNotNull() & changed & (F.col("b.valid_from") < start)
    retired = F.col("b._h").isNotNull() & F.col("n._h").isNull()
    closed = joined.filter(superseded | retired).select(
        "customer_id", *[F.col(f"b.{c}").alias(c) for c in GOLDEN_COLUMNS], F.col("b.attribute_sources"),
        F.col("b.valid_from"), start.alias("valid_to"), F.lit(False).alias("is_current"))
    rows = opened.unionByName(closed)
    return rows.withColumn("record_hash", io.row_hash([c for c in GOLDEN_TABLE_COLUMNS if c not in GOLDEN_KEYS]))
