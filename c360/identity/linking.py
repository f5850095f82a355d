"""Linking: train or load the model, score candidate pairs and cluster records into persons (no table written)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from splink import Linker

from c360 import profile as job_profile
from c360.identity import clustering, features, matching, model, store
from c360.identity.backend import Backend, open_backend
from c360.identity.conf import IdentityConf
from c360.identity.features import SPLINK_COLUMNS
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "resolve_identity"
RECORDS = "silver.customer_records"
EDGE_SCHEMA = "unique_id_l string, unique_id_r string, match_probability double, rule string, strength double"


def materialise(frame: DataFrame) -> DataFrame:
    """`frame` computed once and cut from its plan (a local checkpoint), for frames read more than once.

    Not a cache: a cached frame keeps its executed plan, and with it the hashed relation of every
    broadcast join in it (one on-heap page of spark.buffer.pageSize each, 32 MB in a 2g driver,
    however few rows it holds) until it is unpersisted; that, not the rows, filled the heap. A
    checkpoint keeps only the rows, and a frame read after a commit to the table it came from is
    not recomputed from the new version (Delta refreshes cached plans of the tables it commits to).
    """
    return frame.localCheckpoint(eager=True)


# ---- transforms ---------------------------------------------------------------------------

def build_match_edges(pairs: DataFrame, deterministic: DataFrame, decisions: DataFrame, existing: DataFrame,
                      threshold: float) -> DataFrame:
    """Edges that hold records together: scored pairs at the threshold, rules, steward matches, kept clusters;
    pairs a steward said never match are removed."""
    scored = pairs.filter(F.col("match_probability") >= threshold).select(
        "unique_id_l", "unique_id_r", "match_probability", F.lit("probabilistic").alias("rule"),
        matching.model_strength(F.col("match_weight")).alias("strength"))
    steward = decisions.filter(F.col("decision") == "match").select(
        "unique_id_l", "unique_id_r", F.lit(1.0).alias("match_probability"),
        F.when(F.col("source") == "override", "override:match").otherwise("review:accepted").alias("rule"),
        F.when(F.col("source") == "override", matching.STRENGTH["override"])
        .otherwise(matching.STRENGTH["review"]).alias("strength"))
    never = decisions.filter(F.col("decision") == "no_match").select("unique_id_l", "unique_id_r")
    edges = scored.unionByName(deterministic).unionByName(steward).unionByName(existing)
    return edges.join(never, on=["unique_id_l", "unique_id_r"], how="left_anti").select(*matching.EDGE_COLUMNS)


def existing_edges(previous: DataFrame, clean: DataFrame) -> DataFrame:
    """Incremental runs: unchanged records stay together as before (a star per previous customer id)."""
    kept = previous.join(clean.select("unique_id"), on="unique_id", how="inner")
    whole = Window.partitionBy("customer_id").rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    hub = kept.withColumn("_hub", F.min("unique_id").over(whole)).filter(F.col("unique_id") != F.col("_hub"))
    return hub.select(F.col("_hub").alias("unique_id_l"), F.col("unique_id").alias("unique_id_r"),
                      F.lit(1.0).alias("match_probability"), F.lit("existing").alias("rule"),
                      F.lit(matching.STRENGTH["existing"]).alias("strength"))


def changed_records(match: DataFrame, previous: DataFrame, decisions: DataFrame) -> DataFrame:
    """Incremental runs: records to re-link (unique_id) - new or changed ones, with every record of their
    previous customer, and whole customers holding a pair a steward now says never match."""
    fresh = match.join(previous.select("unique_id", "identity_fingerprint"),
                       on=["unique_id", "identity_fingerprint"], how="left_anti").select("unique_id")
    touched = previous.join(fresh, on="unique_id", how="inner").select("customer_id")
    pl, pr = previous.alias("pl"), previous.alias("pr")
    conflicts = (decisions.filter(F.col("decision") == "no_match")
                 .join(pl, F.col("unique_id_l") == F.col("pl.unique_id"), how="inner")
                 .join(pr, F.col("unique_id_r") == F.col("pr.unique_id"), how="inner")
                 .filter(F.col("pl.customer_id") == F.col("pr.customer_id"))
                 .select(F.col("pl.customer_id").alias("customer_id")))
    dirty_customers = touched.unionByName(conflicts).distinct()
    regrouped = previous.join(dirty_customers, on="customer_id", how="inner").select("unique_id")
    return fresh.unionByName(regrouped).distinct()


# ---- the model ----------------------------------------------------------------------------

def _fits_code(stored: store.StoredModel, conf: IdentityConf, dialect: str) -> bool:
    """Whether a stored model's comparisons are those the code defines now (else it must be retrained)."""
    try:
        model.settings_for(stored.settings, conf, dialect)
    except model.ModelMismatchError as exc:
        log.warning("identity: stored model %s no longer fits the code (%s); training a new version",
                    stored.version, exc)
        return False
    return True


def trained_model(spark: SparkSession, be: Backend, conf: IdentityConf, resolvable, n_records: int,
                  retrain: bool, run: RunContext, profile: dict) -> tuple[store.StoredModel, dict | None, dict]:
    """The stored model in use, and what training did (None when not trained); trained (and stored, and
    logged to MLflow) first when asked, when none exists or when the stored one no longer fits the code."""
    models = store.ModelStore(spark, conf.model.store)
    stored = None if retrain else models.latest()
    if stored is not None and _fits_code(stored, conf, be.dialect):
        return stored, None, {}
    started = time.perf_counter()
    linker, training = model.train(resolvable, conf, n_records, profile)
    seconds = training.pop("seconds")
    trained = linker.misc.save_model_to_json()
    linker.table_management.invalidate_cache()
    seconds["training"] = time.perf_counter() - started
    meta = {"trained_at": run.started_at.isoformat(), "run_id": run.run_id, "records": n_records,
            "backend": be.name, "git_sha": run.git_sha, "seconds": seconds, "store": conf.model.store,
            "training": training}
    stored = models.save(trained, meta)
    store.log_to_mlflow(
        conf, f"train {stored.version}", params={"model_version": stored.version, "records": n_records,
                                                 "backend": be.name, "em_blocking_rules": training["em_passes"],
                                                 "comparisons": training["comparisons"],
                                                 "prior_source": training["prior_source"][:500]},
        metrics={"seconds_training": seconds["training"],
                 "probability_two_random_records_match": trained["probability_two_random_records_match"]},
        artifacts={"splink_model.json": json.dumps(trained, indent=2), "meta.json": json.dumps(meta, indent=2),
                   "profile.json": json.dumps(profile, indent=2)},
        tags={"c360.job": JOB, "c360.kind": "identity_model", "c360.run_id": run.run_id})
    return stored, training, seconds


def check_resolvable(n_records: int) -> None:
    """Fail, naming what is missing, when fewer than two records can be resolved."""
    if n_records < 2:
        raise model.IdentityConfigError(
            f"identity resolution needs at least two customer records with an identifying field "
            f"({', '.join(features.IDENTIFYING)}); {RECORDS} has {n_records}")


# ---- linking ------------------------------------------------------------------------------

@dataclass
class Linked:
    """Result of scoring and clustering inside the Splink backend (frames materialised; `release` frees them)."""

    mode: str
    model_version: str
    training: dict | None
    scored: matching.Scored
    edges: DataFrame
    clusters: DataFrame
    clean: DataFrame | None
    seconds: dict
    cached: list[DataFrame]

    @property
    def trained(self) -> bool:
        """Whether this run trained the model it used."""
        return self.training is not None

    def release(self) -> None:
        """Unpersist the cached scored pairs (checkpointed frames go with their last reference)."""
        for frame in (self.edges, self.clusters, self.scored.pairs, *self.cached):
            frame.unpersist()


@dataclass
class LinkInputs:
    """What linking reads: match records, the previous xref (None before the first run), steward decisions,
    the records' profile, and the model versions the previous xref was built with."""

    match: DataFrame
    previous: DataFrame | None
    decisions: DataFrame
    profile: dict
    previous_models: frozenset[str] = frozenset()


def _score(be: Backend, linker: Linker, conf: IdentityConf, inputs: LinkInputs, resolvable: DataFrame, mode: str,
           cached: list[DataFrame]) -> tuple[matching.Scored, DataFrame | None, DataFrame]:
    """Score candidate pairs: all of them (full) or only those of changed records (incremental); what it
    persists goes on `cached`, for the run to release."""
    low = min(conf.review_band.low, conf.match_threshold)
    spark = inputs.match.sparkSession
    if mode == "full":
        return matching.score_all(be, linker, low), None, spark.createDataFrame([], EDGE_SCHEMA)
    dirty = materialise(changed_records(inputs.match, inputs.previous, inputs.decisions))
    clean = materialise(inputs.match.join(dirty, on="unique_id", how="left_anti"))
    cached += [dirty, clean]
    changed = resolvable.join(dirty, on="unique_id", how="left_semi")
    if changed.isEmpty():
        pairs = spark.createDataFrame([], matching.PAIR_SCHEMA)
        scored = matching.Scored(pairs, 0, {}, {"blocking": 0.0, "prediction": 0.0})
    else:
        existing_records = resolvable.join(dirty, on="unique_id", how="left_anti")
        scored = matching.score_incremental(be, linker, existing_records, changed, low)
    return scored, clean, existing_edges(inputs.previous, clean)


def _cluster(be: Backend, conf: IdentityConf, inputs: LinkInputs, scored: matching.Scored,
             existing: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Edges and clusters (both materialised) of the match records, never-match decisions enforced."""
    match, decisions = inputs.match, inputs.decisions
    deterministic = matching.deterministic_edges(match, conf.deterministic_rules.enabled())
    edges = materialise(build_match_edges(scored.pairs, deterministic, decisions, existing, conf.match_threshold))
    clusters = clustering.connected_components(be, match, edges)
    # Conflicting identifiers cut a cluster unless a steward said the pair is one person.
    steward_match = decisions.filter(F.col("decision") == "match").select("unique_id_l", "unique_id_r")
    implied = clustering.conflicting_pairs(clusters, match, conf.veto, conf.link_type).join(
        steward_match, on=["unique_id_l", "unique_id_r"], how="left_anti")
    never = decisions.filter(F.col("decision") == "no_match").select("unique_id_l", "unique_id_r").unionByName(
        implied)
    clusters = materialise(clustering.enforce_never_match(clusters, edges, never))
    return edges, clusters


def link(spark: SparkSession, conf: IdentityConf, run: RunContext, inputs: LinkInputs, full_relink: bool = False,
         retrain: bool = False) -> Linked:
    """Train or load the model, score pairs and cluster records, all in one Splink backend session."""
    prof = job_profile.current()
    # Fails early, naming what is missing, when the records hold too little to resolve.
    model.plan_training(conf, inputs.profile)
    resolvable = inputs.match.filter(F.col("unresolvable_reason").isNull())
    be = open_backend(spark, conf)
    try:
        with prof.phase("training"):
            registered = be.register(resolvable.select(*SPLINK_COLUMNS))
            n_records = matching.count_rows(registered)
            check_resolvable(n_records)
            stored, training, seconds = trained_model(spark, be, conf, registered, n_records, retrain, run,
                                                      inputs.profile)
        stale = bool(inputs.previous_models - {stored.version})
        full = full_relink or retrain or training is not None or inputs.previous is None or stale
        mode = "full" if full else "incremental"
        linker = Linker(registered, model.settings_for(stored.settings, conf, be.dialect), log_level=logging.WARNING)
        cached: list[DataFrame] = []
        with prof.phase("scoring"):
            scored, clean, existing = _score(be, linker, conf, inputs, resolvable, mode, cached)
        seconds.update(scored.seconds)
        started = time.perf_counter()
        with prof.phase("clustering"):
            edges, clusters = _cluster(be, conf, inputs, scored, existing)
        seconds["clustering"] = time.perf_counter() - started
    finally:
        be.close()
    log.info("identity: %s run, model %s, %d comparisons", mode, stored.version, scored.comparisons)
    return Linked(mode, stored.version, training, scored, edges, clusters, clean, seconds, cached)
