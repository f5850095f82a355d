"""Resolution quality: run statistics, and accuracy against the synthetic bank's ground truth."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from c360.identity import store
from c360.identity.features import unique_id

log = logging.getLogger(__name__)


def run_statistics(assignment: DataFrame) -> dict[str, float]:
    """Records, clusters, singletons and duplicate rate of (unique_id, customer_id)."""
    sizes = assignment.groupBy("customer_id").agg(F.count("*").alias("n"))
    row = sizes.agg(F.sum("n").alias("records"), F.count("*").alias("clusters"),
                    F.sum(F.when(F.col("n") == 1, 1).otherwise(0)).alias("singletons"),
                    F.max("n").alias("largest")).first()
    records = int(row.records or 0)
    clusters = int(row.clusters or 0)
    return {"records": records, "clusters": clusters, "singletons": int(row.singletons or 0),
            "largest_cluster": int(row.largest or 0),
            # Share of records that duplicate another record of the same person.
            "duplicate_rate": (records - clusters) / records if records else 0.0}


def read_truth(spark: SparkSession, path: str) -> DataFrame | None:
    """The generator's record -> person truth as (unique_id, person_id), or None when there is none."""
    if not store.exists(spark, path):
        return None
    truth = spark.read.csv(path, header=True, schema="system string, record_id string, person_id string")
    return truth.select(unique_id(F.col("system"), F.col("record_id")).alias("unique_id"), "person_id")


def _pairs(n) -> F.Column:
    return n * (n - 1) / 2


def accuracy(assignment: DataFrame, truth: DataFrame) -> dict[str, float]:
    """Pairwise precision/recall/F1 and B-cubed precision/recall/F1 over records present in both."""
    cells = (assignment.join(truth, on="unique_id", how="inner")
             .groupBy("customer_id", "person_id").agg(F.count("*").alias("n_ct")))
    by_cluster = cells.groupBy("customer_id").agg(F.sum("n_ct").alias("n_c"))
    by_person = cells.groupBy("person_id").agg(F.sum("n_ct").alias("n_t"))
    sized = cells.join(by_cluster, on="customer_id", how="inner").join(by_person, on="person_id", how="inner")
    row = sized.agg(
        F.sum("n_ct").alias("records"), F.sum(_pairs(F.col("n_ct"))).alias("tp"),
        F.sum(F.col("n_ct") * F.col("n_ct") / F.col("n_c")).alias("b3_p"),
        F.sum(F.col("n_ct") * F.col("n_ct") / F.col("n_t")).alias("b3_r"),
    ).first()
    predicted = by_cluster.agg(F.sum(_pairs(F.col("n_c")))).first()[0] or 0.0
    actual = by_person.agg(F.sum(_pairs(F.col("n_t")))).first()[0] or 0.0
    records, tp = float(row.records or 0), float(row.tp or 0)

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    b3_p = float(row.b3_p or 0) / records if records else 0.0
    b3_r = float(row.b3_r or 0) / records if records else 0.0
    return {"evaluated_records": records, "pairwise_precision": precision, "pairwise_recall": recall,
            "pairwise_f1": f1(precision, recall), "bcubed_precision": b3_p, "bcubed_recall": b3_r,
            "bcubed_f1": f1(b3_p, b3_r), "true_pairs": actual, "predicted_pairs": predicted, "correct_pairs": tp}


def look_alike_merges(spark: SparkSession, assignment: DataFrame, truth: DataFrame, persons_path: str) -> int | None:
    """Pairs of look-alike persons (same name and address, other birth date) resolved into one customer."""
    if not store.exists(spark, persons_path):
        return None
    persons = spark.read.csv(persons_path, header=True).select("person_id", "look_alike_of").filter(
        F.col("look_alike_of").isNotNull() & (F.col("person_id") < F.col("look_alike_of")))
    owner = assignment.join(truth, on="unique_id", how="inner").select("person_id", "customer_id").distinct()
    a, b = owner.alias("a"), owner.alias("b")
    merged = (persons.join(a, on="person_id", how="inner")
              .join(b, (F.col("look_alike_of") == F.col("b.person_id")) & (F.col("a.customer_id") == F.col("b.customer_id")),
                    how="inner"))
    return merged.select("a.person_id").distinct().count()
