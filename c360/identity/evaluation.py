"""Resolution quality: run statistics, and accuracy against the synthetic bank's ground truth.

Evaluation against the truth is test, benchmark and demo code, never part of a production run:
`evaluate` (the `c360 identity evaluate` command) scores the current xref, or any assignment, against
the truth the generator wrote, and `blocking_recall` says how many true pairs blocking puts up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from c360.identity import store
from c360.identity.conf import IdentityConf
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


def truth_record_pairs(truth: DataFrame, records: DataFrame) -> DataFrame:
    """Pairs of `records` (unique_id) the truth says are one person: (unique_id_l, unique_id_r), smaller id left."""
    known = truth.join(records.select("unique_id"), on="unique_id", how="inner")
    left = known.select(F.col("unique_id").alias("unique_id_l"), "person_id")
    right = known.select(F.col("unique_id").alias("unique_id_r"), "person_id")
    return left.join(right, on="person_id", how="inner").filter(
        F.col("unique_id_l") < F.col("unique_id_r")).select("unique_id_l", "unique_id_r")


def blocking_recall(spark: SparkSession, conf: IdentityConf, match: DataFrame, truth: DataFrame) -> dict:
    """Share of the truth's pairs of resolvable match records that the prediction blocking rules put up for
    scoring (every blocked pair is scored): {recall, true_pairs, blocked_true_pairs}."""
    from splink import Linker

    from c360.identity import matching, model
    from c360.identity.backend import open_backend
    from c360.identity.features import SPLINK_COLUMNS

    resolvable = match.filter(F.col("unresolvable_reason").isNull())
    stored = store.ModelStore(spark, conf.model.store).latest()
    be = open_backend(spark, conf)
    try:
        registered = be.register(resolvable.select(*SPLINK_COLUMNS))
        # Blocking needs no trained parameters: without a stored model the untrained settings block alike.
        settings = (model.settings_for(stored.settings, conf, be.dialect) if stored is not None
                    else model.settings(conf))
        linker = Linker(registered, settings, log_level=logging.WARNING)
        blocked = linker.inference.compute_blocked_pairs_for_predict()
        truth_sdf = be.register(truth_record_pairs(truth, resolvable))
        found = int(blocked.query_sql(
            f"select count(*) as n from (select distinct least(join_key_l, join_key_r) as l, "
            f"greatest(join_key_l, join_key_r) as r from {{this}}) p join {truth_sdf.physical_name} t "
            "on p.l = t.unique_id_l and p.r = t.unique_id_r").as_record_list()[0]["n"])
        true_pairs = matching.count_rows(truth_sdf)
    finally:
        be.close()
    recall = found / true_pairs if true_pairs else 1.0
    log.info("identity: blocking recall %.4f (%d of %d true pairs blocked)", recall, found, true_pairs)
    return {"recall": recall, "true_pairs": true_pairs, "blocked_true_pairs": found}


@dataclass
class Evaluation:
    """Accuracy of an assignment against the truth, look-alike persons merged, and blocking recall."""

    accuracy: dict
    look_alike_merges: int | None
    blocking_recall: dict | None = None

    @property
    def f1(self) -> float:
        """Pairwise F1 against the generator's truth."""
        return self.accuracy["pairwise_f1"]

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def current_assignment(xref: DataFrame) -> DataFrame:
    """(unique_id, customer_id) of every record in an xref frame."""
    return xref.select(unique_id(F.col("source_system"), F.col("source_record_id")).alias("unique_id"),
                       "customer_id")


def evaluate(spark: SparkSession, conf: IdentityConf, assignment: DataFrame, match: DataFrame | None = None
             ) -> Evaluation | None:
    """Score `assignment` (unique_id, customer_id) against the generator's truth (None without truth); with
    `match` records also the recall of blocking on them."""
    truth = read_truth(spark, conf.evaluation.truth_records)
    if truth is None:
        return None
    persons = conf.evaluation.truth_records.rsplit("/", 1)[0] + "/persons.csv"
    truth = truth.persist()
    assignment = assignment.persist()
    try:
        result = Evaluation(accuracy(assignment, truth), look_alike_merges(spark, assignment, truth, persons),
                            None if match is None else blocking_recall(spark, conf, match, truth))
    finally:
        truth.unpersist()
        assignment.unpersist()
    log.info("identity: pairwise F1 %.4f against the truth", result.f1)
    return result


def save(spark: SparkSession, conf: IdentityConf, run_date: dt.date | None, label: str, result: Evaluation) -> str:
    """Keep an evaluation as JSON beside the run reports: <store>/../evaluations/<date>/<label>.json."""
    day = run_date.isoformat() if run_date else "current"
    safe = re.sub(r"[^\w.+-]", "_", label)
    path = f"{conf.model.store.rstrip('/').rsplit('/', 1)[0]}/evaluations/{day}/{safe}.json"
    store.write_text(spark, path, json.dumps(result.as_dict(), indent=2, sort_keys=True, default=str))
    return path
