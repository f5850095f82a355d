"""Stable customer ids: clusters inherit the id of the previous cluster they most overlap; merges and splits are events."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from c360 import io

ID_PREFIX = "CUS"
EVENT_TYPES = ("merge", "split", "move")


def new_customer_id(seed: Column) -> Column:
    """A new id from a seed (run date + the cluster's smallest record id): deterministic, so a rerun mints the same."""
    return F.concat(F.lit(ID_PREFIX), F.upper(F.substring(F.sha2(seed, 256), 1, 16)))


def cluster_overlap(clusters: DataFrame, previous: DataFrame) -> DataFrame:
    """How many records of each previous customer id each new cluster holds (cluster_key, customer_id, n)."""
    return (clusters.join(previous.select("unique_id", "customer_id"), on="unique_id", how="inner")
            .groupBy("cluster_key", "customer_id").agg(F.count("*").cast("int").alias("n")))


def _homes(overlap: DataFrame) -> DataFrame:
    """Each previous id's home: the new cluster holding most of its records (ties: smaller cluster key)."""
    most = Window.partitionBy("customer_id").orderBy(F.desc("n"), F.asc("cluster_key")).rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    return overlap.withColumn("_rank", F.row_number().over(most)).filter(F.col("_rank") == 1).drop("_rank")


def assign_customer_ids(clusters: DataFrame, previous: DataFrame, run_date: dt.date) -> DataFrame:
    """(unique_id, cluster_key) + previous (unique_id, customer_id) -> one customer_id per cluster_key.

    A previous id survives in its home cluster; when several previous ids share a home (a merge),
    the one with most records there survives and the others retire. Clusters without a surviving
    id (new persons, split-off parts) get a new id.
    """
    homes = _homes(cluster_overlap(clusters, previous))
    best = Window.partitionBy("cluster_key").orderBy(F.desc("n"), F.asc("customer_id")).rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    kept = homes.withColumn("_rank", F.row_number().over(best)).filter(F.col("_rank") == 1).select(
        "cluster_key", "customer_id")
    seeds = clusters.groupBy("cluster_key").agg(F.min("unique_id").alias("_seed"))
    minted = new_customer_id(F.concat_ws("|", F.lit(run_date.isoformat()), F.col("_seed")))
    return seeds.join(kept, on="cluster_key", how="left").select(
        "cluster_key", F.coalesce(F.col("customer_id"), minted).alias("customer_id"),
        F.col("customer_id").isNull().alias("is_new"))


def build_identity_events(clusters: DataFrame, previous: DataFrame, assignment: DataFrame, run) -> DataFrame:
    """Id changes of this run: merge (ids retired into a survivor), split (part of an id got a new id), move."""
    overlap = cluster_overlap(clusters, previous)
    homes = _homes(overlap).select("customer_id", F.col("cluster_key").alias("_home"))
    surviving = assignment.filter(~F.col("is_new")).select(F.col("customer_id").alias("_alive"))
    flows = (
        overlap.withColumnRenamed("customer_id", "old_id")
        .join(assignment.select("cluster_key", F.col("customer_id").alias("new_id"), "is_new"),
              on="cluster_key", how="inner")
        .filter(F.col("old_id") != F.col("new_id"))
        .join(homes, on=F.col("old_id") == F.col("customer_id"), how="inner")
        .join(surviving, on=F.col("old_id") == F.col("_alive"), how="left")
        .withColumn("_retired", F.col("_alive").isNull())
        .withColumn("event_type", F.when(F.col("_retired") & (F.col("_home") == F.col("cluster_key")), "merge")
                    .when(F.col("is_new"), "split").otherwise("move"))
    )
    events = flows.groupBy("event_type", F.col("new_id").alias("new_customer_id")).agg(
        F.array_sort(F.collect_set("old_id")).alias("_old"),
        F.array_sort(F.collect_set(F.when(F.col("_retired"), F.col("old_id")))).alias("retired_customer_ids"),
        F.sum("n").cast("int").alias("record_count"))
    old_ids = F.when(F.col("event_type") == "merge",
                     F.array_sort(F.array_union("_old", F.array("new_customer_id")))).otherwise(F.col("_old"))
    shaped = events.withColumn("old_customer_ids", old_ids).withColumn("event_id", F.sha2(F.concat_ws(
        "|", F.lit(run.run_date.isoformat()), "event_type", "new_customer_id", F.array_join("old_customer_ids", ",")),
        256))
    return shaped.select(
        "event_id", "event_type", "new_customer_id", "old_customer_ids", "retired_customer_ids", "record_count",
        F.lit(run.run_id).alias("run_id"), F.lit(run.run_date).cast("date").alias("run_date"),
        F.lit(run.started_at).cast("timestamp").alias("event_at"),
        io.row_hash(["event_type", "new_customer_id", "old_customer_ids", "retired_customer_ids",
                     "record_count"]).alias("record_hash"),
    )
