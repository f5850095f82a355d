"""Publish gold.customer_360: one row per customer_id - golden attributes, holdings, value, tenure, activity, consent."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io, pipeline
from c360.config import Config
from c360.run import RunContext

log = logging.getLogger(__name__)
JOB = "publish_gold"
GOLD = "gold.customer_360"
SYSTEMS = ("core_banking", "cards", "digital", "crm")
# Product types of silver.accounts, and the gold column stem of each.
PRODUCTS = {"current": "current_accounts", "savings": "savings_accounts", "loan": "loans", "mortgage": "mortgages",
            "credit_card": "credit_cards"}
CONSENT_PURPOSES = ("marketing", "profiling", "third_party_sharing", "fraud_prevention")
DEPOSITS, LENDING = ("current", "savings"), ("loan", "mortgage")
MONEY = "decimal(18,2)"
SOURCES = ("customer_xref", "golden_customers", "accounts", "balances", "card_transactions", "digital_events",
           "interactions", "consents")
# Columns that say when a row was built rather than what it holds: left out of change detection.
UNHASHED = ("as_of_date", "updated_at")


def _customer_of(xref: DataFrame) -> DataFrame:
    return xref.select("source_system", F.col("source_record_id").alias("source_customer_id"), "customer_id")


def build_record_counts(xref: DataFrame) -> DataFrame:
    """Per customer: the source systems holding a record of them and record counts per system."""
    per_system = [F.sum(F.when(F.col("source_system") == s, 1).otherwise(0)).cast("int").alias(f"count_{s}_records")
                  for s in SYSTEMS]
    return xref.groupBy("customer_id").agg(
        F.array_sort(F.collect_set("source_system")).alias("source_systems"),
        F.count("*").cast("int").alias("count_source_records"), *per_system)


def _open_on(as_of: dt.date) -> Column:
    return (F.col("opened_date") <= F.lit(as_of)) & (F.col("status") != "closed") & (
        F.col("closed_date").isNull() | (F.col("closed_date") > F.lit(as_of)))


def build_holdings(accounts: DataFrame, balances: DataFrame, xref: DataFrame, as_of: dt.date) -> DataFrame:
    """Per customer: open accounts and latest balances by product, deposits, lending and relationship value."""
    latest = Window.partitionBy("account_id").orderBy(F.desc("balance_date")).rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    last_balance = (balances.filter(F.col("balance_date") <= F.lit(as_of))
                    .withColumn("_n", F.row_number().over(latest)).filter(F.col("_n") == 1)
                    .select("account_id", "balance"))
    held = (accounts.filter(_open_on(as_of))
            .join(_customer_of(xref), on=["source_system", "source_customer_id"], how="inner")
            .join(last_balance, on="account_id", how="left"))
    balance = F.coalesce(F.col("balance"), F.lit(0)).cast(MONEY)
    is_ = {p: F.col("product_type") == p for p in PRODUCTS}
    aggs = [F.count("*").cast("int").alias("count_accounts")]
    aggs += [F.sum(F.when(is_[p], 1).otherwise(0)).cast("int").alias(f"count_{stem}") for p, stem in PRODUCTS.items()]
    aggs += [F.sum(F.when(is_[p], balance).otherwise(0)).cast(MONEY).alias(f"amount_{p}_balance")
             for p in (*DEPOSITS, *LENDING)]
    aggs += [
        F.sum(F.when(is_["credit_card"], F.col("credit_limit")).otherwise(0)).cast(MONEY).alias("amount_credit_limit"),
        # Deposits are what the bank holds for the customer; lending what it is owed (overdrafts included).
        F.sum(F.when(F.col("product_type").isin(*DEPOSITS), F.greatest(balance, F.lit(0))).otherwise(0))
        .cast(MONEY).alias("amount_deposits"),
        F.sum(F.when(F.col("product_type").isin(*DEPOSITS, *LENDING), F.greatest(-balance, F.lit(0))).otherwise(0))
        .cast(MONEY).alias("amount_lending"),
        F.countDistinct("product_type").alias("_products"),
    ]
    return held.groupBy("customer_id").agg(*aggs).select(
        "*", (F.col("amount_deposits") + F.col("amount_lending")).cast(MONEY).alias("amount_total_relationship_value"),
        (F.col("_products") / F.lit(len(PRODUCTS))).cast("double").alias("product_penetration")).drop("_products")


def build_last_activity(xref: DataFrame, accounts: DataFrame, transactions: DataFrame, events: DataFrame,
                        interactions: DataFrame, as_of: dt.date) -> DataFrame:
    """Per customer: the latest card transaction, digital event or CRM interaction up to the end of `as_of`."""
    end = F.lit(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min)).cast("timestamp")
    cards = (transactions.filter(F.col("txn_at") < end).groupBy("account_id").agg(F.max("txn_at").alias("at"))
             .join(accounts.select("account_id", "source_system", "source_customer_id"), on="account_id", how="inner"))
    digital = events.filter(F.col("event_at") < end).groupBy("digital_id").agg(F.max("event_at").alias("at")).select(
        F.lit("digital").alias("source_system"), F.col("digital_id").alias("source_customer_id"), "at")
    crm = interactions.filter(F.col("interaction_at") < end).groupBy("contact_id").agg(
        F.max("interaction_at").alias("at")).select(
        F.lit("crm").alias("source_system"), F.col("contact_id").alias("source_customer_id"), "at")
    touches = cards.select("source_system", "source_customer_id", "at").unionByName(digital).unionByName(crm)
    return touches.join(_customer_of(xref), on=["source_system", "source_customer_id"], how="inner").groupBy(
        "customer_id").agg(F.max("at").alias("last_activity_at"))


def build_consent_flags(xref: DataFrame, consents: DataFrame, as_of: dt.date) -> DataFrame:
    """Per customer and purpose: granted when the customer's latest consent event for it (any record) grants it."""
    end = F.lit(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min)).cast("timestamp")
    owned = (consents.filter(F.col("recorded_at") < end)
             .join(_customer_of(xref), on=[F.col("customer_ref_system") == F.col("source_system"),
                                           F.col("customer_ref") == F.col("source_customer_id")], how="inner"))
    latest = Window.partitionBy("customer_id", "purpose").orderBy(F.desc("recorded_at"), F.desc("consent_id")) \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    current = owned.withColumn("_n", F.row_number().over(latest)).filter(F.col("_n") == 1)
    return current.groupBy("customer_id").agg(*[
        F.max(F.when(F.col("purpose") == p, F.col("status") == "granted")).alias(f"has_{p}_consent")
        for p in CONSENT_PURPOSES])


def build_customer_360(golden: DataFrame, counts: DataFrame, holdings: DataFrame, activity: DataFrame,
                       consent: DataFrame, as_of: dt.date, updated_at: dt.datetime) -> DataFrame:
    """One row per current customer: golden attributes with counts, holdings, value, tenure, activity and consent."""
    day = F.lit(as_of)
    base = (golden.filter(F.col("is_current"))
            .join(counts, on="customer_id", how="inner")
            .join(holdings, on="customer_id", how="left")
            .join(activity, on="customer_id", how="left")
            .join(consent, on="customer_id", how="left"))
    zero_int = [c for c in holdings.columns if c.startswith("count_")]
    zero_money = [c for c in holdings.columns if c.startswith("amount_")]
    shaped = base.select(
        "customer_id", "title", "first_name", "middle_name", "last_name", "date_of_birth",
        F.floor(F.months_between(day, "date_of_birth") / 12).cast("int").alias("age_years"),
        "email", "phone_e164", "address_line1", "city", "postcode", "country", "source_systems",
        "count_source_records", *[f"count_{s}_records" for s in SYSTEMS],
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero_int],
        *[F.coalesce(F.col(c), F.lit(0)).cast(MONEY).alias(c) for c in zero_money],
        F.coalesce("product_penetration", F.lit(0.0)).alias("product_penetration"),
        "customer_since", F.floor(F.months_between(day, "customer_since")).cast("int").alias("tenure_months"),
        "last_activity_at",
        *[F.coalesce(F.col(f"has_{p}_consent"), F.lit(False)).alias(f"has_{p}_consent") for p in CONSENT_PURPOSES],
        day.alias("as_of_date"), F.lit(updated_at).cast("timestamp").alias("updated_at"),
    )
    return shaped.withColumn("record_hash", io.row_hash([c for c in shaped.columns if c not in (
        "customer_id", *UNHASHED)]))


def publish(spark: SparkSession, cfg: Config, run: RunContext) -> io.WriteStats:
    """Build gold.customer_360 for the run date and MERGE it (retired customers deleted) behind its quality gate."""
    silver = {name: io.read(spark, cfg, f"silver.{name}") for name in SOURCES}
    xref = silver["customer_xref"].persist()
    frame = build_customer_360(
        silver["golden_customers"], build_record_counts(xref),
        build_holdings(silver["accounts"], silver["balances"], xref, run.run_date),
        build_last_activity(xref, silver["accounts"], silver["card_transactions"], silver["digital_events"],
                            silver["interactions"], run.run_date),
        build_consent_flags(xref, silver["consents"], run.run_date), run.run_date, run.started_at)
    try:
        frame = io.check_contract(frame.select(*io.spec(cfg, GOLD).columns), io.spec(cfg, GOLD))
        stats = pipeline.gated_write(spark, cfg, GOLD, run,
                                     lambda: io.merge(spark, cfg, GOLD, frame, run, delete_missing=True))
    finally:
        xref.unpersist()
    log.info("%s: version %s, +%d ~%d -%d", GOLD, stats.version, stats.inserted, stats.updated, stats.deleted)
    return stats
