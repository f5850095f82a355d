"""Feature store: the feature registry (conf/features.yaml) and point-in-time customer features and labels.

features.customer_daily holds one row per customer per as-of date T, computed only from rows dated
on or before T (event time, never load time or a row's current state), so a training set joined
on T sees what the bank knew on T. features.churn_labels holds each customer's outcome in the
`horizon` days after T, for the dates whose window has passed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io, pipeline
from c360.config import Config, ConfigError, read_conf_yaml
from c360.errors import UserError
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "build_features"
CUSTOMER_DAILY = "features.customer_daily"
CHURN_LABELS = "features.churn_labels"
OFFER_LABELS = "features.offer_labels"
# An offer's answer counts when it comes within this many days (CRM closes unanswered offers then).
OFFER_RESPONSE_DAYS = 30
SOURCES = ("golden_customers", "customer_xref", "accounts", "balances", "card_transactions", "digital_events",
           "interactions", "offers", "offer_responses", "complaints", "consents")
EVERYDAY, LENDING = ("current", "savings"), ("loan", "mortgage")
DAY_SECONDS = 86400


# ---- registry ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feature:
    """One registered feature: meaning, lineage, owner, allowed purposes, PII class and expiry."""

    name: str
    table: str
    description: str
    sources: tuple[str, ...]
    purposes: tuple[str, ...]
    pii: str
    expiry_days: int
    owner: str


@dataclass(frozen=True)
class Registry:
    """conf/features.yaml: purposes (with the consent each needs), features by table, history schedule."""

    purposes: dict[str, str | None]
    features: dict[str, Feature]
    entities: dict[str, str]
    history_step_days: int
    history_lookback_days: int

    def of_table(self, table: str) -> list[Feature]:
        """The registered features of `table`, in file order."""
        return [f for f in self.features.values() if f.table == table]

    def check_purpose(self, columns: list[str], purpose: str, table: str) -> None:
        """Refuse a purpose the registry does not know, or any registered feature of `table` that may not serve it."""
        if purpose not in self.purposes:
            raise UserError(f"unknown purpose {purpose!r}: conf/features.yaml declares {sorted(self.purposes)}")
        registered = {f.name: f for f in self.of_table(table)}
        refused = [c for c in columns if c in registered and purpose not in registered[c].purposes]
        if refused:
            details = "; ".join(f"feature {c!r} allows {list(registered[c].purposes)}" for c in refused)
            raise UserError(f"purpose {purpose!r} may not use {details} (conf/features.yaml)")
        unknown = [c for c in columns if table in self.entities and c not in registered]
        if unknown:
            raise UserError(f"{table} has no registered feature {unknown} (conf/features.yaml)")


def load_registry(conf_dir: Path) -> Registry:
    """Read and check conf/features.yaml: every feature names known purposes and a known PII class."""
    origin = str(Path(conf_dir) / "features.yaml")
    data = read_conf_yaml(conf_dir, "features.yaml")
    try:
        purposes = {name: spec.get("consent") for name, spec in data["purposes"].items()}
        classes = set(data["pii_classes"])
        history = data["history"]
        features, entities = {}, {}
        for table, spec in data["tables"].items():
            entities[table] = spec["entity"]
            for name, f in spec["features"].items():
                where = f"{origin}: tables.{table}.features.{name}"
                bad = [p for p in f["purposes"] if p not in purposes]
                if bad:
                    raise ConfigError(f"{where}: unknown purposes {bad} (known: {sorted(purposes)})")
                if f["pii"] not in classes or f["pii"] == "personal":
                    raise ConfigError(f"{where}: pii must be one of {sorted(classes - {'personal'})}, not {f['pii']!r}")
                features[name] = Feature(name, table, f["description"], tuple(f["sources"]), tuple(f["purposes"]),
                                         f["pii"], int(f["expiry_days"]), spec["owner"])
        return Registry(purposes, features, entities, int(history["step_days"]), int(history["lookback_days"]))
    except KeyError as exc:
        raise ConfigError(f"{origin}: missing key {exc}") from None


def history_dates(registry: Registry, run_date: dt.date) -> list[dt.date]:
    """As-of dates of the training history: the run date and every step back within the look-back."""
    steps = registry.history_lookback_days // registry.history_step_days
    return sorted(run_date - dt.timedelta(days=registry.history_step_days * k) for k in range(steps + 1))


# ---- point-in-time transforms ------------------------------------------------------------------

def as_of_frame(spark: SparkSession, dates: list[dt.date]) -> DataFrame:
    """One row per as-of date, with the exclusive end of that day as a timestamp (end_ts)."""
    frame = spark.createDataFrame([(d,) for d in sorted(set(dates))], "as_of_date date")
    return frame.withColumn("end_ts", F.date_add("as_of_date", 1).cast("timestamp"))


def _owner(xref: DataFrame) -> DataFrame:
    """xref keyed as (owner_system, owner_ref) -> customer_id, to join any source reference on."""
    return xref.select(F.col("source_system").alias("owner_system"), F.col("source_record_id").alias("owner_ref"),
                       "customer_id")


def _owned(df: DataFrame, system: Column, ref: Column, xref: DataFrame) -> DataFrame:
    """Rows of `df` with the customer_id their (system, ref) resolves to; unresolved rows drop out."""
    keyed = df.withColumn("owner_system", system).withColumn("owner_ref", ref)
    return keyed.join(_owner(xref), on=["owner_system", "owner_ref"], how="inner").drop("owner_system", "owner_ref")


def account_closed_on(accounts: DataFrame) -> Column:
    """The day an account closed: core banking says closed_date; a card account only its closed state's change time."""
    return F.coalesce(F.col("closed_date"),
                      F.when(F.col("status") == "closed", F.to_date("source_updated_at")))


def build_population(golden: DataFrame, xref: DataFrame, as_of: DataFrame) -> DataFrame:
    """Customers known on each as-of date, with the golden version valid then (else the earliest one).

    Customers are those identity resolution knows now (silver.customer_xref): a retired id's history is
    its surviving customer's. A customer is known on T when they joined on or before T (customer_since), or, without a joining
    date, when their first golden version exists by T. The initial extract describes the past, so for
    dates before the first load the earliest version stands for the record as it was.
    """
    current = xref.select("customer_id").distinct()
    candidates = golden.join(current, on="customer_id", how="inner").join(as_of, how="cross").filter(
        (F.col("customer_since") <= F.col("as_of_date"))
        | (F.col("customer_since").isNull() & (F.col("valid_from") < F.col("end_ts"))))
    known = F.col("valid_from") < F.col("end_ts")
    # Valid on T first (latest such version), then the earliest version for dates before the first load.
    order = Window.partitionBy("customer_id", "as_of_date").orderBy(
        F.desc(known.cast("int")), F.when(known, -F.unix_timestamp("valid_from")).otherwise(
            F.unix_timestamp("valid_from"))).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    version = candidates.withColumn("_n", F.row_number().over(order)).filter(F.col("_n") == 1)
    age = F.floor(F.months_between("as_of_date", "date_of_birth") / 12).cast("int")
    tenure = F.datediff("as_of_date", "customer_since")
    return version.select(
        "customer_id", "as_of_date", "end_ts", age.alias("age_years"),
        F.when(age < 30, "18-29").when(age < 45, "30-44").when(age < 60, "45-59").when(age.isNotNull(), "60+")
        .alias("age_band"),
        F.col("city").alias("region"), tenure.cast("int").alias("tenure_days"),
        F.when(tenure < 365, "<1y").when(tenure < 3 * 365, "1-3y").when(tenure < 10 * 365, "3-10y")
        .when(tenure.isNotNull(), "10y+").alias("tenure_band"))


def build_holdings(accounts: DataFrame, xref: DataFrame, as_of: DataFrame) -> DataFrame:
    """Per customer and as-of date: products open on T by type, the product mix, closures in the 90 days up to T."""
    owned = _owned(accounts.withColumn("closed_on", account_closed_on(accounts)), F.col("source_system"),
                   F.col("source_customer_id"), xref)
    at = owned.join(as_of, on=F.col("opened_date") <= F.col("as_of_date"), how="inner")
    is_open = F.col("closed_on").isNull() | (F.col("closed_on") > F.col("as_of_date"))
    closed_recently = (F.col("closed_on") <= F.col("as_of_date")) & (
        F.col("closed_on") > F.date_sub("as_of_date", 90))

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0)).cast("int")

    return at.groupBy("customer_id", "as_of_date").agg(
        count(is_open).alias("products_open"),
        count(is_open & F.col("product_type").isin(*EVERYDAY)).alias("everyday_open"),
        count(is_open & F.col("product_type").isin(*LENDING)).alias("lending_open"),
        count(is_open & (F.col("product_type") == "credit_card")).alias("cards_open"),
        F.concat_ws("+", F.array_sort(F.collect_set(F.when(is_open, F.col("product_type"))))).alias("product_holding"),
        count(closed_recently).alias("accounts_closed_90d"))


def _deposits_on(balances: DataFrame, everyday: DataFrame, as_of: DataFrame, back_days: int) -> DataFrame:
    """Per customer and as-of date: deposits on T - back_days, each account at its latest balance within 45 days."""
    ref = as_of.select("as_of_date", F.date_sub("as_of_date", back_days).alias("ref_date"))
    in_window = (F.col("balance_date") <= F.col("ref_date")) & (F.col("balance_date") > F.date_sub("ref_date", 45))
    latest = Window.partitionBy("account_id", "as_of_date").orderBy(F.desc("balance_date")).rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    held = (F.col("closed_on").isNull() | (F.col("closed_on") > F.col("ref_date")))
    picked = (balances.join(ref, on=in_window, how="inner")
              .withColumn("_n", F.row_number().over(latest)).filter(F.col("_n") == 1)
              .join(everyday, on="account_id", how="inner").filter(held))
    return picked.groupBy("customer_id", "as_of_date").agg(F.sum("balance").cast("double").alias(f"deposits_{back_days}"))


def build_balances(accounts: DataFrame, balances: DataFrame, xref: DataFrame, as_of: DataFrame) -> DataFrame:
    """Per customer and as-of date: deposit balances on T and their change over 30 and 90 days (share of then)."""
    everyday = _owned(accounts.filter(F.col("product_type").isin(*EVERYDAY))
                      .withColumn("closed_on", account_closed_on(accounts)),
                      F.col("source_system"), F.col("source_customer_id"), xref).select(
        "account_id", "customer_id", "closed_on")
    now, d30, d90 = (_deposits_on(balances, everyday, as_of, back) for back in (0, 30, 90))

    def change(then: str) -> Column:
        return ((F.col("deposits_0") - F.col(then)) / F.greatest(F.abs(F.col(then)), F.lit(1.0))).cast("double")

    return (now.join(d30, on=["customer_id", "as_of_date"], how="left")
            .join(d90, on=["customer_id", "as_of_date"], how="left")
            .select("customer_id", "as_of_date", F.col("deposits_0").alias("balance_deposits"),
                    change("deposits_30").alias("balance_change_30d"), change("deposits_90").alias("balance_change_90d")))


def _windowed_counts(events: DataFrame, at: str, as_of: DataFrame, days: int, aggs: list[Column]) -> DataFrame:
    """Per customer and as-of date: `aggs` over the owned events with `at` in the `days` days up to the end of T."""
    in_window = (F.col(at) < F.col("end_ts")) & (
        F.col(at) >= (F.col("end_ts").cast("long") - days * DAY_SECONDS).cast("timestamp"))
    return events.join(as_of, on=in_window, how="inner").groupBy("customer_id", "as_of_date").agg(*aggs)


def build_activity(accounts: DataFrame, transactions: DataFrame, events: DataFrame, interactions: DataFrame,
                   complaints: DataFrame, offers: DataFrame, responses: DataFrame, xref: DataFrame,
                   as_of: DataFrame) -> DataFrame:
    """Per customer and as-of date: card spend and logins (30 days), complaints and interactions (90), offers accepted (365)."""
    cards = accounts.select("account_id", "source_system", "source_customer_id")
    txns = _owned(transactions.join(cards, on="account_id", how="inner"), F.col("source_system"),
                  F.col("source_customer_id"), xref)
    logins = _owned(events.filter(F.col("event_type") == "login"), F.lit("digital"), F.col("digital_id"), xref)
    touches = _owned(interactions, F.lit("crm"), F.col("contact_id"), xref)
    cases = _owned(complaints, F.col("customer_ref_system"), F.col("customer_ref"), xref)
    accepted = _owned(responses.filter(F.col("response") == "accepted").join(
        offers.select("offer_id", "contact_id"), on="offer_id", how="inner"), F.lit("crm"), F.col("contact_id"), xref)
    parts = [
        _windowed_counts(txns, "txn_at", as_of, 30, [F.count("*").cast("int").alias("txn_count_30d"),
                                                     F.sum("amount").cast("double").alias("txn_amount_30d")]),
        _windowed_counts(logins, "event_at", as_of, 30, [F.count("*").cast("int").alias("logins_30d")]),
        _windowed_counts(cases, "received_at", as_of, 90, [F.count("*").cast("int").alias("complaints_90d")]),
        _windowed_counts(touches, "interaction_at", as_of, 90, [F.count("*").cast("int").alias("interactions_90d")]),
        _windowed_counts(accepted, "responded_at", as_of, 365,
                         [F.count("*").cast("int").alias("offers_accepted_365d")]),
    ]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, on=["customer_id", "as_of_date"], how="full")
    return joined


def build_purposes_allowed(consents: DataFrame, xref: DataFrame, as_of: DataFrame,
                           purposes: dict[str, str | None]) -> DataFrame:
    """Per customer and as-of date: the model purposes allowed by the latest consent event per consent type by T."""
    owned = _owned(consents, F.col("customer_ref_system"), F.col("customer_ref"), xref)
    known = owned.join(as_of, on=F.col("recorded_at") < F.col("end_ts"), how="inner")
    latest = Window.partitionBy("customer_id", "as_of_date", "purpose").orderBy(
        F.desc("recorded_at"), F.desc("consent_id")).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    granted = (known.withColumn("_n", F.row_number().over(latest)).filter(F.col("_n") == 1)
               .groupBy("customer_id", "as_of_date")
               .agg(F.collect_set(F.when(F.col("status") == "granted", F.col("purpose"))).alias("granted")))
    return granted.select("customer_id", "as_of_date", _allowed(F.col("granted"), purposes).alias("purposes_allowed"))


def _allowed(granted: Column, purposes: dict[str, str | None]) -> Column:
    """The model purposes (sorted) whose consent is in `granted`, or that need none."""
    entries = [F.lit(p) if consent is None else F.when(F.array_contains(granted, consent), F.lit(p))
               for p, consent in sorted(purposes.items())]
    return F.filter(F.array(*entries), lambda p: p.isNotNull())


def build_customer_daily(silver: dict[str, DataFrame], as_of: DataFrame, purposes: dict[str, str | None],
                         run_id: str) -> DataFrame:
    """features.customer_daily: one row per customer known on each as-of date, every value as of that date."""
    xref = silver["customer_xref"].select("source_system", "source_record_id", "customer_id").filter(
        F.col("customer_id").isNotNull())
    keys = ["customer_id", "as_of_date"]
    population = build_population(silver["golden_customers"], xref, as_of)
    holdings = build_holdings(silver["accounts"], xref, as_of)
    balances = build_balances(silver["accounts"], silver["balances"], xref, as_of)
    activity = build_activity(silver["accounts"], silver["card_transactions"], silver["digital_events"],
                              silver["interactions"], silver["complaints"], silver["offers"],
                              silver["offer_responses"], xref, as_of)
    allowed = build_purposes_allowed(silver["consents"], xref, as_of, purposes)
    no_consent = _allowed(F.array().cast("array<string>"), purposes)
    frame = (population.join(holdings, on=keys, how="left").join(balances, on=keys, how="left")
             .join(activity, on=keys, how="left").join(allowed, on=keys, how="left"))
    zero = ["products_open", "everyday_open", "lending_open", "cards_open", "accounts_closed_90d", "complaints_90d",
            "interactions_90d", "offers_accepted_365d", "txn_count_30d", "logins_30d"]
    return frame.select(
        "customer_id", "as_of_date", "age_years", "age_band", "region", "tenure_days", "tenure_band",
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero[:4]],
        F.coalesce(F.col("product_holding"), F.lit("")).alias("product_holding"),
        F.coalesce(F.col("accounts_closed_90d"), F.lit(0)).cast("int").alias("accounts_closed_90d"),
        F.coalesce(F.col("balance_deposits"), F.lit(0.0)).alias("balance_deposits"),
        "balance_change_30d", "balance_change_90d",
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero[5:9]],
        F.coalesce(F.col("txn_amount_30d"), F.lit(0.0)).alias("txn_amount_30d"),
        F.coalesce(F.col("logins_30d"), F.lit(0)).cast("int").alias("logins_30d"),
        F.coalesce(F.col("purposes_allowed"), no_consent).alias("purposes_allowed"),
        F.lit(run_id).alias("built_run_id"))


def build_churn_labels(accounts: DataFrame, xref: DataFrame, as_of: DataFrame, horizon_days: int,
                       observed_on: dt.date, run_id: str) -> DataFrame:
    """features.churn_labels: for customers with an everyday account in use on T, whether all of them closed or
    went dormant in the `horizon_days` after T; only for dates whose window has passed by `observed_on`."""
    everyday = accounts.filter(F.col("product_type").isin(*EVERYDAY))
    gone_on = F.least(account_closed_on(everyday),
                      F.when(F.col("status") == "dormant", F.to_date("source_updated_at")))
    owned = _owned(everyday.withColumn("gone_on", gone_on), F.col("source_system"), F.col("source_customer_id"),
                   xref.filter(F.col("customer_id").isNotNull()))
    ripe = as_of.filter(F.date_add("as_of_date", horizon_days) <= F.lit(observed_on))
    in_use = (F.col("opened_date") <= F.col("as_of_date")) & (
        F.col("gone_on").isNull() | (F.col("gone_on") > F.col("as_of_date")))
    end = F.date_add("as_of_date", horizon_days)
    gone = F.col("gone_on").isNotNull() & (F.col("gone_on") <= end)
    per_customer = owned.join(ripe, on=in_use, how="inner").groupBy("customer_id", "as_of_date").agg(
        F.min(gone.cast("int")).alias("churned"), F.max("gone_on").alias("last_gone_on"))
    return per_customer.select(
        "customer_id", "as_of_date", F.lit(horizon_days).cast("int").alias("horizon_days"),
        F.col("churned").cast("int").alias("churned"),
        F.when(F.col("churned") == 1, F.col("last_gone_on")).alias("churned_on"),
        F.lit(observed_on).cast("date").alias("observed_on"), F.lit(run_id).alias("built_run_id"))


def build_offer_labels(offers: DataFrame, responses: DataFrame, xref: DataFrame, as_of: DataFrame,
                       horizon_days: int, response_days: int, observed_on: dt.date, run_id: str) -> DataFrame:
    """features.offer_labels: per customer, as-of date T and product, whether an offer of it made in the
    `horizon_days` after T was accepted within `response_days` of being made; only for dates whose window
    (offers and their responses) has passed by `observed_on`."""
    ripe = as_of.filter(F.date_add("as_of_date", horizon_days + response_days) <= F.lit(observed_on))
    window_end = (F.col("end_ts").cast("long") + horizon_days * DAY_SECONDS).cast("timestamp")
    made = _owned(offers, F.lit("crm"), F.col("contact_id"), xref.filter(F.col("customer_id").isNotNull())).join(
        ripe, on=(F.col("offered_at") >= F.col("end_ts")) & (F.col("offered_at") < window_end), how="inner")
    answer_by = (F.col("offered_at").cast("long") + response_days * DAY_SECONDS).cast("timestamp")
    answered = made.join(responses.select("offer_id", "response", "responded_at"), on="offer_id", how="left")
    accepted = (F.col("response") == "accepted") & (F.col("responded_at") <= answer_by)
    return answered.groupBy("customer_id", "as_of_date", "product_code").agg(
        F.count("*").cast("int").alias("offers"), F.max(accepted.cast("int")).alias("accepted"),
        F.min(F.to_date("offered_at")).alias("first_offered_on")).select(
        "customer_id", "as_of_date", "product_code", "offers",
        F.coalesce(F.col("accepted"), F.lit(0)).cast("int").alias("accepted"), "first_offered_on",
        F.lit(horizon_days).cast("int").alias("horizon_days"), F.lit(observed_on).cast("date").alias("observed_on"),
        F.lit(run_id).alias("built_run_id"))


# ---- service ------------------------------------------------------------------------------------

def _dates_predicate(dates: list[dt.date]) -> str:
    return "as_of_date IN (" + ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(set(dates))) + ")"


def build(spark: SparkSession, cfg: Config, run: RunContext, history: bool = False,
          horizon_days: int | None = None) -> list[io.WriteStats]:
    """Build features.customer_daily for the run date (and the training history with `history`) and the churn
    and offer labels whose window has passed; each as-of date's rows are replaced, so a rerun changes nothing."""
    registry = load_registry(cfg.conf_dir)
    dates = history_dates(registry, run.run_date) if history else [run.run_date]
    silver = {name: io.read(spark, cfg, f"silver.{name}") for name in SOURCES}
    as_of = as_of_frame(spark, dates)
    written = []
    features = build_customer_daily(silver, as_of, registry.purposes, run.run_id)
    frame = features.select(*io.spec(cfg, CUSTOMER_DAILY).columns)
    written.append(pipeline.gated_write(spark, cfg, CUSTOMER_DAILY, run, lambda: io.replace_where(
        spark, cfg, CUSTOMER_DAILY, frame, _dates_predicate(dates), run)))
    horizon = horizon_days if horizon_days is not None else label_horizon(cfg, CHURN_LABELS)
    ripe = [d for d in dates if d + dt.timedelta(days=horizon) <= run.run_date]
    if ripe:
        labels = build_churn_labels(silver["accounts"], silver["customer_xref"], as_of_frame(spark, ripe), horizon,
                                    run.run_date, run.run_id)
        written.append(pipeline.gated_write(spark, cfg, CHURN_LABELS, run, lambda: io.replace_where(
            spark, cfg, CHURN_LABELS, labels, _dates_predicate(ripe), run)))
    offer_horizon = label_horizon(cfg, OFFER_LABELS)
    ready = [d for d in dates if d + dt.timedelta(days=offer_horizon + OFFER_RESPONSE_DAYS) <= run.run_date]
    if ready:
        offers = build_offer_labels(silver["offers"], silver["offer_responses"], silver["customer_xref"],
                                    as_of_frame(spark, ready), offer_horizon, OFFER_RESPONSE_DAYS, run.run_date,
                                    run.run_id)
        written.append(pipeline.gated_write(spark, cfg, OFFER_LABELS, run, lambda: io.replace_where(
            spark, cfg, OFFER_LABELS, offers, _dates_predicate(ready), run)))
    for stats in written:
        log.info("%s: version %s, %d rows", stats.table, stats.version, stats.inserted)
    return written


def label_horizon(cfg: Config, table: str) -> int:
    """The horizon in days of the label table `table`, from the model spec that reads it (conf/models.yaml)."""
    from models.spec import load_specs

    horizons = {spec.label.horizon_days for spec in load_specs(Path(cfg.conf_dir) / "models.yaml").values()
                if spec.label.table == table}
    if len(horizons) != 1 or None in horizons:
        raise ConfigError(f"{cfg.conf_dir}/models.yaml: the models reading {table} must state one label.horizon_days "
                          f"(found {sorted(horizons, key=str) or 'no model'})")
    return int(horizons.pop())
