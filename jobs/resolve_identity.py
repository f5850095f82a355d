"""Identity resolution: silver.customer_records -> stable customer ids (xref, events, review queue, golden records)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from splink import Linker

from c360 import io, pipeline
from c360.config import Config
from c360.identity import clustering, evaluation, matching, model, review, stable_ids, store, survivorship
from c360.identity import profile as profiling
from c360.identity.backend import Backend, open_backend
from c360.identity.conf import IdentityConf, load_identity_conf
from c360.identity import features
from c360.identity.features import SPLINK_COLUMNS, build_match_records
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "resolve_identity"
RECORDS, ACCOUNTS = "silver.customer_records", "silver.accounts"
XREF, EVENTS, REVIEW, GOLDEN = ("silver.customer_xref", "silver.identity_events", "silver.identity_review",
                                "silver.golden_customers")
XREF_HASHED = ["customer_id", "match_probability", "match_rule", "unresolvable_reason", "identity_fingerprint",
               "model_version"]


@dataclass
class ResolutionReport:
    """What one resolution run did and how good it was (also logged to MLflow and kept as JSON)."""

    run_id: str
    run_date: dt.date
    mode: str
    backend: str
    model_version: str
    trained: bool
    comparisons: int
    statistics: dict
    histogram: dict
    accuracy: dict | None
    look_alike_merges: int | None
    events: dict
    review_pending: int
    seconds: dict = field(default_factory=dict)
    writes: dict = field(default_factory=dict)
    # Fill rate and distinct share of each comparison field per source system (c360.identity.profile).
    profile: dict = field(default_factory=dict)
    # When this run trained: comparisons, EM passes run and skipped, the prior and where it came from.
    training: dict | None = None
    # Share of the truth's record pairs that blocking put up for scoring (full runs with truth only).
    blocking_recall: dict | None = None

    @property
    def f1(self) -> float | None:
        """Pairwise F1 against the generator's truth (None without truth)."""
        return None if self.accuracy is None else self.accuracy["pairwise_f1"]

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


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


# ---- the run ------------------------------------------------------------------------------

@dataclass
class _State:
    """Tables as the previous run left them (None before the first run)."""

    xref: DataFrame | None
    review: DataFrame | None
    golden: DataFrame


def _previous_state(spark: SparkSession, cfg: Config) -> _State:
    xref = None
    if io.exists(spark, cfg, XREF):
        xref = io.read(spark, cfg, XREF).select(
            F.concat_ws(":", "source_system", "source_record_id").alias("unique_id"), "customer_id",
            "identity_fingerprint", "model_version", "match_rule", "match_probability").localCheckpoint(eager=True)
        # A checkpoint, not a cache: events compare against the previous xref after this run has
        # rewritten it, and Delta refreshes every cached plan of a table it commits to.
    review_df = io.read(spark, cfg, REVIEW) if io.exists(spark, cfg, REVIEW) else None
    golden = (io.read(spark, cfg, GOLDEN) if io.exists(spark, cfg, GOLDEN)
              else spark.createDataFrame([], io.schema_of(io.spec(cfg, GOLDEN))))
    return _State(xref, review_df, golden)


def _fits_code(stored: store.StoredModel, conf: IdentityConf, dialect: str) -> bool:
    """Whether a stored model's comparisons are those the code defines now (else it must be retrained)."""
    try:
        model.settings_for(stored.settings, conf, dialect)
    except model.ModelMismatchError as exc:
        log.warning("identity: stored model %s no longer fits the code (%s); training a new version",
                    stored.version, exc)
        return False
    return True


def _trained_model(spark: SparkSession, be: Backend, conf: IdentityConf, resolvable, n_records: int,
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


def _accounts(spark: SparkSession, cfg: Config) -> DataFrame:
    """silver.accounts, or no rows when it is not built (a bank conforming only its customer records)."""
    if io.exists(spark, cfg, ACCOUNTS):
        return io.read(spark, cfg, ACCOUNTS)
    return spark.createDataFrame([], io.schema_of(io.spec(cfg, ACCOUNTS)))


def profile_match_records(spark: SparkSession, cfg: Config, conf: IdentityConf) -> dict:
    """Profile of the current customer records as identity sees them (the `c360 identity profile` command)."""
    match = build_match_records(io.read(spark, cfg, RECORDS), _accounts(spark, cfg), conf.nicknames,
                                conf.crowded_values)
    return profiling.profile_records(match)


def train_model(spark: SparkSession, cfg: Config, run: RunContext, conf: IdentityConf) -> store.StoredModel:
    """Train a new model version on the current records and store it (the explicit retraining command)."""
    match = build_match_records(io.read(spark, cfg, RECORDS), _accounts(spark, cfg), conf.nicknames,
                                conf.crowded_values).persist()
    profile = profiling.profile_records(match)
    model.plan_training(conf, profile)
    resolvable = match.filter(F.col("unresolvable_reason").isNull()).select(*SPLINK_COLUMNS).persist()
    be = open_backend(spark, conf)
    try:
        stored, _, _ = _trained_model(spark, be, conf, be.register(resolvable), resolvable.count(), True, run,
                                      profile)
    finally:
        be.close()
        resolvable.unpersist()
        match.unpersist()
    return stored


@dataclass
class _Linked:
    """Result of scoring and clustering inside the Splink backend."""

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


def _score(be: Backend, linker: Linker, conf: IdentityConf, match: DataFrame, resolvable: DataFrame,
           state: _State, decisions: DataFrame, mode: str, cached: list[DataFrame],
           truth_pairs: DataFrame | None = None) -> tuple[matching.Scored, DataFrame | None, DataFrame]:
    """Score candidate pairs: all of them (full) or only those of changed records (incremental); what it
    persists goes on `cached`, for the run to release."""
    low = min(conf.review_band.low, conf.match_threshold)
    empty_edges = match.sparkSession.createDataFrame(
        [], "unique_id_l string, unique_id_r string, match_probability double, rule string, strength double")
    if mode == "full":
        return matching.score_all(be, linker, low, truth_pairs), None, empty_edges
    dirty = changed_records(match, state.xref, decisions).persist()
    clean = match.join(dirty, on="unique_id", how="left_anti").persist()
    cached += [dirty, clean]
    changed = resolvable.join(dirty, on="unique_id", how="left_semi")
    if changed.isEmpty():
        pairs = match.sparkSession.createDataFrame([], matching.PAIR_SCHEMA)
        scored = matching.Scored(pairs, 0, {}, {"blocking": 0.0, "prediction": 0.0})
    else:
        existing_records = resolvable.join(dirty, on="unique_id", how="left_anti")
        scored = matching.score_incremental(be, linker, existing_records, changed, low)
    return scored, clean, existing_edges(state.xref, clean)


def truth_record_pairs(truth: DataFrame, records: DataFrame) -> DataFrame:
    """Pairs of `records` (unique_id) the truth says are one person: (unique_id_l, unique_id_r), smaller id left."""
    known = truth.join(records.select("unique_id"), on="unique_id", how="inner")
    left = known.select(F.col("unique_id").alias("unique_id_l"), "person_id")
    right = known.select(F.col("unique_id").alias("unique_id_r"), "person_id")
    return left.join(right, on="person_id", how="inner").filter(
        F.col("unique_id_l") < F.col("unique_id_r")).select("unique_id_l", "unique_id_r")


def _link(spark: SparkSession, conf: IdentityConf, run: RunContext, match: DataFrame, state: _State,
          decisions: DataFrame, full_relink: bool, retrain: bool, profile: dict | None = None) -> _Linked:
    """Train or load the model, score pairs and cluster records, all in one Splink backend session."""
    profile = profile if profile is not None else profiling.profile_records(match)
    # Fails early, naming what is missing, when the records hold too little to resolve.
    model.plan_training(conf, profile)
    resolvable = match.filter(F.col("unresolvable_reason").isNull())
    n_records = resolvable.count()
    if n_records < 2:
        raise model.IdentityConfigError(
            f"identity resolution needs at least two customer records with an identifying field "
            f"({', '.join(features.IDENTIFYING)}); {RECORDS} has {n_records}")
    be = open_backend(spark, conf)
    try:
        inputs = be.register(resolvable.select(*SPLINK_COLUMNS))
        stored, training, seconds = _trained_model(spark, be, conf, inputs, n_records, retrain, run, profile)
        stale = state.xref is not None and state.xref.filter(F.col("model_version") != stored.version).limit(1).count() > 0
        mode = "full" if full_relink or training is not None or state.xref is None or stale else "incremental"
        linker = Linker(inputs, model.settings_for(stored.settings, conf, be.dialect), log_level=logging.WARNING)
        cached: list[DataFrame] = []
        truth = evaluation.read_truth(spark, conf.evaluation.truth_records) if mode == "full" else None
        truth_pairs = None if truth is None else truth_record_pairs(truth, resolvable)
        scored, clean, existing = _score(be, linker, conf, match, resolvable, state, decisions, mode, cached,
                                         truth_pairs)
        cached.append(scored.pairs)
        seconds.update(scored.seconds)
        started = time.perf_counter()
        deterministic = matching.deterministic_edges(match, conf.deterministic_rules.enabled())
        edges = build_match_edges(scored.pairs, deterministic, decisions, existing, conf.match_threshold).persist()
        clusters = clustering.connected_components(be, match, edges)
        # Conflicting identifiers cut a cluster unless a steward said the pair is one person.
        steward_match = decisions.filter(F.col("decision") == "match").select("unique_id_l", "unique_id_r")
        implied = clustering.conflicting_pairs(clusters, match, conf.veto, conf.link_type).join(
            steward_match, on=["unique_id_l", "unique_id_r"], how="left_anti")
        never = decisions.filter(F.col("decision") == "no_match").select("unique_id_l", "unique_id_r").unionByName(
            implied)
        clusters = clustering.enforce_never_match(clusters, edges, never).persist()
        clusters.count()
        seconds["clustering"] = time.perf_counter() - started
    finally:
        be.close()
    log.info("identity: %s run, model %s, %d comparisons", mode, stored.version, scored.comparisons)
    return _Linked(mode, stored.version, training, scored, edges, clusters, clean, seconds, cached)


def _write(spark: SparkSession, cfg: Config, run: RunContext, frames: dict[str, DataFrame]) -> dict[str, io.WriteStats]:
    """Merge each output table behind its quality gate, in dependency order (xref first)."""
    results = {}
    for name, frame in frames.items():
        results[name] = pipeline.gated_write(spark, cfg, name, run, lambda: io.merge(spark, cfg, name, frame, run))
        stats = results[name]
        log.info("%s: version %s, +%d ~%d -%d", name, stats.version, stats.inserted, stats.updated, stats.deleted)
    return results


def _evaluate(spark: SparkSession, conf: IdentityConf, customer_of: DataFrame) -> tuple[dict | None, int | None]:
    """Accuracy against the generator's truth and look-alike merges, when truth exists."""
    truth = evaluation.read_truth(spark, conf.evaluation.truth_records)
    if truth is None:
        return None, None
    persons = conf.evaluation.truth_records.rsplit("/", 1)[0] + "/persons.csv"
    truth = truth.persist()
    try:
        return (evaluation.accuracy(customer_of, truth),
                evaluation.look_alike_merges(spark, customer_of, truth, persons))
    finally:
        truth.unpersist()


def _tables(spark: SparkSession, conf: IdentityConf, run: RunContext, records: DataFrame, match: DataFrame,
            state: _State, decisions: DataFrame, linked: _Linked) -> tuple[dict[str, DataFrame], DataFrame]:
    """The run's output frames in write order, and (unique_id, customer_id) of every record."""
    previous = state.xref if state.xref is not None else spark.createDataFrame(
        [], "unique_id string, customer_id string")
    assignment = stable_ids.assign_customer_ids(linked.clusters, previous, run.run_date).persist()
    linked.cached.append(assignment)
    customer_of = linked.clusters.join(assignment, on="cluster_key", how="inner").select(
        "unique_id", "customer_id").persist()
    xref = build_customer_xref(match, customer_of, record_links(linked.edges, customer_of), state.xref,
                               linked.clean, linked.model_version, conf.probability_decimals, run).persist()
    golden = survivorship.build_golden_versions(
        survivorship.build_golden_attributes(records, xref, conf.survivorship), state.golden,
        dt.datetime.combine(run.run_date, dt.time.min))
    events = stable_ids.build_identity_events(linked.clusters, previous, assignment, run)
    band = conf.review_band
    # Stored rounded: the last digits of a float sum differ between runs of the same pairs (seen
    # between a backfill and daily runs of the same dates), and a stored value must not.
    pairs = linked.scored.pairs.withColumns({c: F.round(c, conf.probability_decimals)
                                             for c in ("match_probability", "match_weight")})
    queue = review.build_identity_review(pairs, customer_of, state.review, decisions, band.low, band.high, run)
    return {XREF: xref, GOLDEN: golden, EVENTS: events, REVIEW: queue}, customer_of


def _log_run(conf: IdentityConf, report: ResolutionReport) -> None:
    """One MLflow run per resolution run: parameters, quality metrics, seconds per phase, the report."""
    metrics = {**report.statistics, "comparisons": report.comparisons, "review_pending": report.review_pending,
               **{f"seconds_{k}": v for k, v in report.seconds.items()},
               **{f"pairs_p{k}": v for k, v in report.histogram.items()},
               **{f"events_{k}": v for k, v in report.events.items()}, **(report.accuracy or {})}
    if report.look_alike_merges is not None:
        metrics["look_alike_merges"] = report.look_alike_merges
    if report.blocking_recall is not None:
        metrics["blocking_recall"] = report.blocking_recall["recall"]
    if report.training is not None:
        metrics["probability_two_random_records_match"] = report.training["prior"]
    store.log_to_mlflow(
        conf, f"resolve {report.run_date} {report.mode}",
        params={"mode": report.mode, "backend": report.backend, "model_version": report.model_version,
                "match_threshold": conf.match_threshold, "review_band": f"{conf.review_band.low}-{conf.review_band.high}",
                "run_date": report.run_date},
        metrics=metrics, artifacts={"resolution_report.json": json.dumps(report.as_dict(), indent=2, default=str)},
        tags={"c360.job": JOB, "c360.kind": "identity_run", "c360.run_id": report.run_id})


@dataclass
class Inputs:
    """What a resolution run reads: source records, their match form and its profile, previous state and
    steward decisions."""

    records: DataFrame
    match: DataFrame
    state: _State
    decisions: DataFrame
    profile: dict = field(default_factory=dict)


def read_inputs(spark: SparkSession, cfg: Config, conf: IdentityConf) -> Inputs:
    """Read and shape the run's inputs (match records and decisions persisted)."""
    records = io.read(spark, cfg, RECORDS)
    match = build_match_records(records, _accounts(spark, cfg), conf.nicknames, conf.crowded_values).persist()
    profile = profiling.profile_records(match)
    for line in profiling.render(profile):
        log.info("identity profile: %s", line)
    state = _previous_state(spark, cfg)
    decisions = review.combine_decisions(review.read_overrides(spark, conf.overrides.file),
                                         review.review_decisions(state.review, spark)).persist()
    return Inputs(records, match, state, decisions, profile)


def link_records(spark: SparkSession, conf: IdentityConf, run: RunContext, inputs: Inputs, full_relink: bool = False,
                 retrain: bool = False) -> _Linked:
    """Score and cluster the inputs' records on conf's backend (no table is written)."""
    return _link(spark, conf, run, inputs.match, inputs.state, inputs.decisions, full_relink or retrain, retrain,
                 inputs.profile or None)


def run_resolution(spark: SparkSession, cfg: Config, run: RunContext, full_relink: bool = False,
                   retrain: bool = False, backend: str | None = None) -> ResolutionReport:
    """Resolve every current source record to a stable customer id and publish xref, events, review and golden."""
    conf = load_identity_conf(cfg, **({"backend": backend} if backend else {}))
    started = time.perf_counter()
    inputs = read_inputs(spark, cfg, conf)
    features_seconds = time.perf_counter() - started
    linked = link_records(spark, conf, run, inputs, full_relink, retrain)
    started = time.perf_counter()
    frames, customer_of = _tables(spark, conf, run, inputs.records, inputs.match, inputs.state, inputs.decisions,
                                  linked)
    events = {r.event_type: r["count"] for r in frames[EVENTS].groupBy("event_type").count().collect()}
    pending = frames[REVIEW].filter(F.col("status") == "pending").count()
    writes = _write(spark, cfg, run, frames)
    seconds = {"features": features_seconds, **linked.seconds, "tables": time.perf_counter() - started}
    accuracy, look_alikes = _evaluate(spark, conf, customer_of)
    report = ResolutionReport(
        run_id=run.run_id, run_date=run.run_date, mode=linked.mode, backend=conf.backend,
        model_version=linked.model_version, trained=linked.trained, comparisons=linked.scored.comparisons,
        statistics=evaluation.run_statistics(customer_of), histogram=linked.scored.histogram, accuracy=accuracy,
        look_alike_merges=look_alikes, events=events, review_pending=pending, seconds=seconds,
        writes={n: {"version": s.version, "inserted": s.inserted, "updated": s.updated, "deleted": s.deleted}
                for n, s in writes.items()},
        profile=inputs.profile, training=linked.training, blocking_recall=linked.scored.blocking_recall)
    report.seconds["total"] = sum(report.seconds.values())
    store.save_report(spark, conf, run.run_id, run.run_date, report.as_dict())
    _log_run(conf, report)
    for frame in (inputs.match, inputs.decisions, linked.edges, linked.clusters, customer_of, frames[XREF],
                  *linked.cached):
        frame.unpersist()
    if inputs.state.xref is not None:
        inputs.state.xref.unpersist()
    return report


def main(argv: list[str] | None = None) -> int:
    """spark-submit / python -m entry point: resolve identities for --date (incremental unless --full-relink)."""
    parser = pipeline.job_parser(JOB, __doc__)
    parser.add_argument("--full-relink", action="store_true", help="re-score every record instead of changed ones")
    parser.add_argument("--retrain", action="store_true", help="train and store a new model version first")
    parser.add_argument("--backend", choices=["duckdb", "spark"], help="override conf/identity.yaml backend")
    args = parser.parse_args(argv)
    cfg, spark, run = pipeline.start_job(JOB, args)
    report = run_resolution(spark, cfg, run, args.full_relink, args.retrain, args.backend)
    pipeline.emit(report.as_dict())
    return 0


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
