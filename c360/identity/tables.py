"""The identity tables a linking run publishes: xref, golden records, identity events and the review queue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io
from c360.identity import review, stable_ids, survivorship
from c360.identity.conf import IdentityConf
from c360.identity.linking import Linked, materialise
from c360.run import RunContext

XREF, EVENTS, REVIEW, GOLDEN = ("silver.customer_xref", "silver.identity_events", "silver.identity_review",
                                "silver.golden_customers")
XREF_HASHED = ["customer_id", "match_probability", "match_rule", "unresolvable_reason", "identity_fingerprint",
               "model_version"]


def record_links(edges: DataFrame, customer_of: DataFrame) -> DataFrame:
    """Per record, the strongest edge holding it in its customer: (unique_id, match_rule, match_probability)."""
    own = edges.filter(F.col("rule") != "existing")
    both = own.select(F.col("unique_id_l").alias("unique_id"), F.col("unique_id_r").alias("other"),
                      "rule", "match_probability", "strength").unionByName(
        own.select(F.col("unique_id_r").alias("unique_id"), F.col("unique_id_l").alias("other"),
                   "rule", "match_probability", "strength"))
    mine = customer_of.select("unique_id", "customer_id")
    theirs = customer_of.select(F.col("unique_id").alias("other"), F.col("customer_id").alias("_other_customer"))
    inside = both.join(mine, on="unique_id", how="inner").join(theirs, on="other", how="inner").filter(
        F.col("customer_id") == F.col("_other_customer"))
    strongest = Window.partitionBy("unique_id").orderBy(F.desc("strength"), F.desc("match_probability"),
                                                        F.asc("other")).rowsBetween(Window.unboundedPreceding,
                                                                                    Window.currentRow)
    return inside.withColumn("_n", F.row_number().over(strongest)).filter(F.col("_n") == 1).select(
        "unique_id", F.col("rule").alias("match_rule"), "match_probability")


def build_customer_xref(match: DataFrame, customer_of: DataFrame, links: DataFrame, previous: DataFrame | None,
                        clean: DataFrame | None, model_version: str, decimals: int, run: RunContext) -> DataFrame:
    """One xref row per source record: its customer id, how it was linked, and the model and run behind it."""
    rows = match.select("unique_id", "source_system", "source_record_id", "identity_fingerprint",
                        "unresolvable_reason").join(customer_of, on="unique_id", how="inner")
    rows = rows.join(links.select("unique_id", F.col("match_rule").alias("_link_rule"), "match_probability"),
                     on="unique_id", how="left")
    if previous is not None and clean is not None:
        # Unchanged records keep how they were linked, unless they were alone before (a singleton,
        # or unresolvable until a steward linked it): then this run's link says how.
        kept = previous.join(clean.select("unique_id"), on="unique_id", how="inner").filter(
            ~F.col("match_rule").isin("singleton", "unresolvable")).select(
            "unique_id", F.col("match_rule").alias("_prev_rule"), F.col("match_probability").alias("_prev_p"))
        rows = rows.join(kept, on="unique_id", how="left")
    else:
        rows = rows.withColumn("_prev_rule", F.lit(None).cast("string")).withColumn("_prev_p", F.lit(None).cast("double"))
    rule = (F.when(F.col("unresolvable_reason").isNotNull() & F.col("_link_rule").isNull(), "unresolvable")
            .when(F.col("_prev_rule").isNotNull(), F.col("_prev_rule"))
            .when(F.col("_link_rule").isNotNull(), F.col("_link_rule"))
            .otherwise("singleton"))
    probability = F.when(F.col("_prev_rule").isNotNull(), F.col("_prev_p")).otherwise(F.col("match_probability"))
    shaped = rows.select(
        "source_system", "source_record_id", "customer_id",
        F.round(probability, decimals).cast("double").alias("match_probability"), rule.alias("match_rule"),
        "unresolvable_reason", "identity_fingerprint", F.lit(model_version).alias("model_version"),
        F.lit(run.run_id).alias("resolved_run_id"), F.lit(run.started_at).cast("timestamp").alias("resolved_at"))
    return shaped.withColumn("record_hash", io.row_hash(XREF_HASHED))


@dataclass
class Tables:
    """A run's output frames in write order (materialised), (unique_id, customer_id) of every record, and
    what the frames hold: identity events per type, review pairs per status, golden rows."""

    frames: dict[str, DataFrame]
    customer_of: DataFrame
    events: dict[str, int]
    review_statuses: dict[str, int]
    golden_rows: int

    def is_empty(self, name: str) -> bool:
        """Whether the frame of table `name` holds no rows (the xref is never taken as empty)."""
        rows = {GOLDEN: self.golden_rows, EVENTS: sum(self.events.values()),
                REVIEW: sum(self.review_statuses.values())}
        return rows.get(name, 1) == 0

    def release(self) -> None:
        """Drop what building the tables materialised (checkpoints go with their last reference)."""
        for frame in (self.customer_of, *self.frames.values()):
            frame.unpersist()


def _counted(frame: DataFrame, column: str) -> dict[str, int]:
    """Rows of a (materialised) frame per value of `column`."""
    return {r[column]: r["count"] for r in frame.groupBy(column).count().collect()}


def build_tables(spark: SparkSession, conf: IdentityConf, run: RunContext, records: DataFrame, match: DataFrame,
                 previous: DataFrame | None, review_table: DataFrame | None, golden: DataFrame, decisions: DataFrame,
                 linked: Linked) -> Tables:
    """The run's output frames (xref, golden, events, review), each computed once, and every record's customer."""
    previous_ids = previous if previous is not None else spark.createDataFrame(
        [], "unique_id string, customer_id string")
    assignment = stable_ids.assign_customer_ids(linked.clusters, previous_ids, run.run_date)
    customer_of = materialise(linked.clusters.join(assignment, on="cluster_key", how="inner").select(
        "unique_id", "customer_id"))
    xref = materialise(build_customer_xref(match, customer_of, record_links(linked.edges, customer_of), previous,
                                           linked.clean, linked.model_version, conf.probability_decimals, run))
    golden_rows = materialise(survivorship.build_golden_versions(
        survivorship.build_golden_attributes(records, xref, conf.survivorship), golden,
        dt.datetime.combine(run.run_date, dt.time.min)))
    events = materialise(stable_ids.build_identity_events(linked.clusters, previous_ids, assignment, run))
    band = conf.review_band
    # Stored rounded: the last digits of a float sum differ between runs of the same pairs (seen
    # between a backfill and daily runs of the same dates), and a stored value must not.
    pairs = linked.scored.pairs.withColumns({c: F.round(c, conf.probability_decimals)
                                             for c in ("match_probability", "match_weight")})
    queue = materialise(review.build_identity_review(pairs, customer_of, review_table, decisions, band.low,
                                                     band.high, run))
    return Tables({XREF: xref, GOLDEN: golden_rows, EVENTS: events, REVIEW: queue}, customer_of,
                  _counted(events, "event_type"), _counted(queue, "status"), golden_rows.count())
