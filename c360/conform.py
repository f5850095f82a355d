"""Silver conform: bronze raw strings -> typed, standardised, de-duplicated silver tables (customers as SCD2)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from c360 import io, pipeline, profile
from c360.catalog import SourceFeed, TableSpec, load_catalog
from c360.config import Config
from c360.errors import UserError
from c360.run import RunContext
from c360.standardize import (blank_to_null, clean_address_line, clean_code, clean_email, clean_name,
                              clean_postcode, clean_title, phone_e164)
from c360.typing_rules import parsed

log = logging.getLogger(__name__)
JOB = "silver_conform"
_LINEAGE = ["_landing_date", "_record_no"]


@dataclass(frozen=True)
class ConformParams:
    """Parameters of the silver transforms."""

    home_country_code: str = "44"


def typed(bronze: DataFrame, feed: SourceFeed) -> DataFrame:
    """Bronze raw strings cast to the contract's types (bronze already rejected what does not parse)."""
    return bronze.select(*[parsed(c).alias(c.name) for c in feed.columns], *_LINEAGE)


def with_record_hash(df: DataFrame, keys: list[str]) -> DataFrame:
    """Add record_hash over every non-key column, so merges update only rows that really changed."""
    return df.withColumn("record_hash", io.row_hash([c for c in df.columns if c not in keys]))


def latest_per_key(df: DataFrame, keys: list[str], order: list[Column]) -> DataFrame:
    """Keep the last version of each key by `order` (then landing date and record number)."""
    newest_first = Window.partitionBy(*keys).orderBy(
        *[o.desc() for o in order], F.col("_landing_date").desc(), F.col("_record_no").desc()
    ).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return df.withColumn("_rank", F.row_number().over(newest_first)).filter(F.col("_rank") == 1).drop("_rank")


# ---- customer records (SCD type 2) -------------------------------------------------------

_PERSON_COLUMNS = ["title", "first_name", "middle_name", "last_name", "full_name", "date_of_birth", "email",
                   "phone_e164", "address_line1", "city", "postcode", "country", "national_id",
                   "linked_core_cust_no", "customer_since"]


def _person(system: str, record_id: Column, *, params: ConformParams, updated_at: Column, **cols: Column) -> list[Column]:
    values = {c: cols.get(c, F.lit(None)) for c in _PERSON_COLUMNS}
    values["phone_e164"] = phone_e164(cols["phone"], params.home_country_code) if "phone" in cols else F.lit(None)
    values["full_name"] = blank_to_null(F.concat_ws(" ", values["first_name"], values["middle_name"], values["last_name"]))
    types = {"date_of_birth": "date", "customer_since": "date"}
    return [
        F.lit(system).alias("source_system"), record_id.alias("source_record_id"),
        *[values[c].cast(types.get(c, "string")).alias(c) for c in _PERSON_COLUMNS],
        updated_at.alias("source_updated_at"), *[F.col(c) for c in _LINEAGE],
    ]


def conform_core_customers(df: DataFrame, params: ConformParams) -> DataFrame:
    """core_banking customers -> person records."""
    return df.select(*_person(
        "core_banking", F.col("cust_no"), params=params, updated_at=F.col("updated_at"),
        title=clean_title(F.col("title")), first_name=clean_name(F.col("first_name")),
        middle_name=clean_name(F.col("middle_name")), last_name=clean_name(F.col("last_name")),
        date_of_birth=F.col("date_of_birth"), email=clean_email(F.col("email")), phone=F.col("phone"),
        address_line1=clean_address_line(F.col("address_line1")), city=clean_name(F.col("city")),
        postcode=clean_postcode(F.col("postcode")), country=clean_code(F.col("country")),
        national_id=clean_code(F.regexp_replace(F.col("national_id"), r"\s", "")),
        customer_since=F.col("customer_since"),
    ))


def conform_card_customers(df: DataFrame, params: ConformParams) -> DataFrame:
    """cards customers ("SMITH, John A", "12 High St, Leeds") -> person records."""
    has_comma = F.col("full_name").contains(",")
    given = F.split(F.trim(F.substring_index(F.col("full_name"), ",", -1)), r"\s+")
    plain = F.split(F.trim(F.col("full_name")), r"\s+")
    first = F.when(has_comma, given.getItem(0)).otherwise(plain.getItem(0))
    middle = F.when(has_comma, F.array_join(F.slice(given, 2, 10), " ")).otherwise(
        F.array_join(F.slice(plain, 2, F.greatest(F.size(plain) - 2, F.lit(0))), " "))
    last = F.when(has_comma, F.substring_index(F.col("full_name"), ",", 1)).otherwise(F.element_at(plain, -1))
    address = F.regexp_extract(F.col("address"), r"^(.*),\s*([^,]+)$", 1)
    city = F.regexp_extract(F.col("address"), r"^(.*),\s*([^,]+)$", 2)
    return df.select(*_person(
        "cards", F.col("card_customer_id"), params=params, updated_at=F.col("updated_at"),
        first_name=clean_name(first), middle_name=clean_name(middle), last_name=clean_name(last),
        date_of_birth=F.col("date_of_birth"), email=clean_email(F.col("email")), phone=F.col("mobile"),
        address_line1=clean_address_line(F.when(address != "", address).otherwise(F.col("address"))),
        city=clean_name(city), postcode=clean_postcode(F.col("postcode")),
    ))


def conform_digital_profiles(df: DataFrame, params: ConformParams) -> DataFrame:
    """digital profiles -> person records."""
    return df.select(*_person(
        "digital", F.col("digital_id"), params=params, updated_at=F.col("updated_at"),
        first_name=clean_name(F.col("first_name")), last_name=clean_name(F.col("last_name")),
        date_of_birth=F.col("date_of_birth"), email=clean_email(F.col("email")), phone=F.col("phone"),
        customer_since=F.to_date(F.col("registered_at")),
    ))


def conform_crm_contacts(df: DataFrame, params: ConformParams) -> DataFrame:
    """CRM contacts -> person records."""
    return df.select(*_person(
        "crm", F.col("contact_id"), params=params, updated_at=F.col("modified_at"),
        title=clean_title(F.col("salutation")), first_name=clean_name(F.col("first_name")),
        last_name=clean_name(F.col("last_name")), date_of_birth=F.col("birth_date"),
        email=clean_email(F.col("email")), phone=F.col("phone"), postcode=clean_postcode(F.col("postcode")),
        linked_core_cust_no=blank_to_null(F.col("core_cust_no")),
    ))


def build_customer_records(records: DataFrame) -> DataFrame:
    """Person records of all sources -> SCD2 history: one row per record version, unchanged repeats collapsed."""
    record = ["source_system", "source_record_id"]
    attrs = io.row_hash(_PERSON_COLUMNS)
    # Several deliveries with the same update time: the last one landed is the truth for it.
    deduped = latest_per_key(records.withColumn("_attrs", attrs), record + ["source_updated_at"], [])
    in_time = Window.partitionBy(*record).orderBy("source_updated_at")
    changed = deduped.withColumn("_previous", F.lag("_attrs").over(in_time)).filter(
        F.col("_previous").isNull() | (F.col("_previous") != F.col("_attrs")))
    versions = changed.withColumn("valid_from", F.col("source_updated_at")).withColumn(
        "valid_to", F.lead("source_updated_at").over(in_time))
    shaped = versions.select(
        *record, *_PERSON_COLUMNS, "source_updated_at", "valid_from", "valid_to",
        F.col("valid_to").isNull().alias("is_current"),
    )
    return with_record_hash(shaped, record + ["valid_from"])


# ---- accounts and facts -------------------------------------------------------------------

_PRODUCTS = {"CUR": "current", "SAV": "savings", "LOAN": "loan", "MORT": "mortgage"}
_CARD_STATUS = {"OPEN": "active", "BLOCKED": "blocked", "CLOSED": "closed"}


def _mapped(col: Column, mapping: dict[str, str]) -> Column:
    """Map code values; an unmapped code passes through lower-cased so the quality suite flags it."""
    key = F.upper(F.trim(col))
    result = F.lower(F.trim(col))
    for code, value in reversed(mapping.items()):
        result = F.when(key == code, F.lit(value)).otherwise(result)
    return result


def build_accounts(core: DataFrame, cards: DataFrame) -> DataFrame:
    """Core banking and card accounts -> one row per account, latest state."""
    core_rows = core.select(
        F.lit("core_banking").alias("source_system"), F.col("account_no").alias("account_id"),
        F.col("cust_no").alias("source_customer_id"), _mapped(F.col("product_code"), _PRODUCTS).alias("product_type"),
        clean_code(F.col("currency")).alias("currency"), "opened_date", "closed_date",
        F.lower(F.col("status")).alias("status"), F.lit(None).cast("decimal(18,2)").alias("credit_limit"),
        F.lit(None).cast("string").alias("card_number_hash"), F.col("updated_at").alias("source_updated_at"),
        *_LINEAGE,
    )
    card_rows = cards.select(
        F.lit("cards").alias("source_system"), F.col("card_account_id").alias("account_id"),
        F.col("card_customer_id").alias("source_customer_id"), F.lit("credit_card").alias("product_type"),
        clean_code(F.col("currency")).alias("currency"), "opened_date",
        F.lit(None).cast("date").alias("closed_date"), _mapped(F.col("status"), _CARD_STATUS).alias("status"),
        "credit_limit", F.lower(F.col("card_number_hash")).alias("card_number_hash"),
        F.col("updated_at").alias("source_updated_at"), *_LINEAGE,
    )
    keys = ["source_system", "account_id"]
    latest = latest_per_key(core_rows.unionByName(card_rows), keys, [F.col("source_updated_at")])
    return with_record_hash(latest.drop(*_LINEAGE), keys)


def _fact(df: DataFrame, keys: list[str], order: list[Column], columns: list[Column], *,
          landing: bool = False) -> DataFrame:
    """Select a fact's columns, keep the latest delivery per key, and fingerprint it; with `landing`, keep the
    landing date of that delivery as landing_date (incremental tables use it to retract re-delivered files' rows)."""
    latest = latest_per_key(df.select(*columns, *_LINEAGE), keys, order)
    if landing:
        latest = latest.withColumn("landing_date", F.col("_landing_date"))
    return with_record_hash(latest.drop(*_LINEAGE), keys)


def build_balances(df: DataFrame) -> DataFrame:
    """Core banking balances -> one row per account and balance date."""
    return _fact(df, ["account_id", "balance_date"], [], [
        F.col("account_no").alias("account_id"), "balance_date",
        F.col("ledger_balance").alias("balance"), clean_code(F.col("currency")).alias("currency")], landing=True)


def build_card_transactions(df: DataFrame) -> DataFrame:
    """Card transactions -> one row per txn_id."""
    return _fact(df, ["txn_id"], [], [
        "txn_id", F.col("card_account_id").alias("account_id"), "txn_at", F.to_date("txn_at").alias("txn_date"),
        "amount", clean_code(F.col("currency")).alias("currency"), blank_to_null(F.col("merchant_category")).alias("merchant_category"),
        clean_code(F.col("merchant_country")).alias("merchant_country"), clean_code(F.col("channel")).alias("channel")],
        landing=True)


def build_digital_events(df: DataFrame) -> DataFrame:
    """Digital-channel events -> one row per event_id."""
    return _fact(df, ["event_id"], [], [
        "event_id", "digital_id", clean_code(F.col("event_type"), upper=False).alias("event_type"), "event_at",
        blank_to_null(F.col("device_id")).alias("device_id"), clean_code(F.col("ip_country")).alias("ip_country"),
        clean_code(F.col("channel"), upper=False).alias("channel")], landing=True)


def build_interactions(df: DataFrame) -> DataFrame:
    """CRM interactions -> one row per interaction_id."""
    return _fact(df, ["interaction_id"], [], [
        "interaction_id", "contact_id", clean_code(F.col("channel"), upper=False).alias("channel"),
        blank_to_null(F.col("topic")).alias("topic"), blank_to_null(F.col("outcome")).alias("outcome"),
        "interaction_at"], landing=True)


def build_offers(df: DataFrame) -> DataFrame:
    """Campaign offers -> one row per offer_id."""
    return _fact(df, ["offer_id"], [], [
        "offer_id", "contact_id", blank_to_null(F.col("campaign_id")).alias("campaign_id"),
        clean_code(F.col("product_code")).alias("product_code"),
        clean_code(F.col("channel"), upper=False).alias("channel"), "offered_at"], landing=True)


def build_offer_responses(df: DataFrame) -> DataFrame:
    """Offer responses -> one row per answered offer_id, the latest answer."""
    return _fact(df, ["offer_id"], [F.col("responded_at")], [
        "offer_id", clean_code(F.col("response"), upper=False).alias("response"), "responded_at"], landing=True)


def build_complaints(df: DataFrame) -> DataFrame:
    """Complaint cases -> one row per complaint_id, latest state."""
    latest_state = [F.coalesce(F.col("resolved_at"), F.col("received_at"))]
    return _fact(df, ["complaint_id"], latest_state, [
        "complaint_id", clean_code(F.col("customer_ref_system"), upper=False).alias("customer_ref_system"),
        blank_to_null(F.col("customer_ref")).alias("customer_ref"), "received_at",
        blank_to_null(F.col("category")).alias("category"), clean_code(F.col("channel"), upper=False).alias("channel"),
        blank_to_null(F.col("description")).alias("description"), clean_code(F.col("status"), upper=False).alias("status"),
        "resolved_at", "compensation_amount", clean_code(F.col("currency")).alias("currency")])


def build_consents(df: DataFrame) -> DataFrame:
    """Consent records -> one row per consent event."""
    return _fact(df, ["consent_id"], [], [
        "consent_id", clean_code(F.col("customer_ref_system"), upper=False).alias("customer_ref_system"),
        "customer_ref", clean_code(F.col("purpose"), upper=False).alias("purpose"),
        clean_code(F.col("status"), upper=False).alias("status"), "recorded_at",
        clean_code(F.col("channel"), upper=False).alias("channel")], landing=True)


# ---- the job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilverStep:
    """One silver table: the bronze feeds it reads and the transform that builds it."""

    table: str
    feeds: tuple[str, ...]
    build: Callable[[dict[str, DataFrame], ConformParams], DataFrame]


def _customers(inputs: dict[str, DataFrame], params: ConformParams) -> DataFrame:
    parts = [
        conform_core_customers(inputs["core_banking.customers"], params),
        conform_card_customers(inputs["cards.customers"], params),
        conform_digital_profiles(inputs["digital.profiles"], params),
        conform_crm_contacts(inputs["crm.contacts"], params),
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return build_customer_records(union)


# Order matters: the quality suites check facts against the customer and account tables.
STEPS = (
    SilverStep("silver.customer_records",
               ("core_banking.customers", "cards.customers", "digital.profiles", "crm.contacts"), _customers),
    SilverStep("silver.accounts", ("core_banking.accounts", "cards.accounts"),
               lambda i, p: build_accounts(i["core_banking.accounts"], i["cards.accounts"])),
    SilverStep("silver.balances", ("core_banking.balances",), lambda i, p: build_balances(i["core_banking.balances"])),
    SilverStep("silver.card_transactions", ("cards.transactions",),
               lambda i, p: build_card_transactions(i["cards.transactions"])),
    SilverStep("silver.digital_events", ("digital.events",), lambda i, p: build_digital_events(i["digital.events"])),
    SilverStep("silver.interactions", ("crm.interactions",), lambda i, p: build_interactions(i["crm.interactions"])),
    SilverStep("silver.offers", ("crm.offers",), lambda i, p: build_offers(i["crm.offers"])),
    SilverStep("silver.offer_responses", ("crm.offer_responses",),
               lambda i, p: build_offer_responses(i["crm.offer_responses"])),
    SilverStep("silver.complaints", ("complaints.cases",), lambda i, p: build_complaints(i["complaints.cases"])),
    SilverStep("silver.consents", ("consent.records",), lambda i, p: build_consents(i["consent.records"])),
)


def _inputs(spark: SparkSession, cfg: Config, step: SilverStep, run_date: dt.date | None) -> dict[str, DataFrame]:
    """Typed bronze inputs of a step: all of bronze to rebuild, the run date's partition to increment."""
    catalog = load_catalog(cfg)
    incremental = catalog.table(step.table).mode == "incremental" and run_date is not None
    inputs = {}
    for key in step.feeds:
        feed = catalog.feed(*key.split("."))
        bronze = io.read(spark, cfg, feed.bronze_table)
        if incremental:
            bronze = bronze.filter(F.col("_landing_date") == F.lit(run_date))
        inputs[key] = typed(bronze, feed)
    return inputs


def retraction(table: TableSpec, run_date: dt.date | None) -> str | None:
    """For an incremental table conformed for one landing date: the rows that date delivered (a predicate on
    landing_date). Those whose key that date's bronze partition no longer holds were retracted by a
    re-delivered file, so the merge deletes them; rows of other dates are never touched."""
    if table.mode != "incremental" or run_date is None or "landing_date" not in table.columns:
        return None
    return f"landing_date = DATE'{run_date.isoformat()}'"


def run_conform(spark: SparkSession, cfg: Config, run: RunContext, run_date: dt.date | None,
                tables: list[str] | None = None) -> dict[str, io.WriteStats]:
    """Build and merge every silver table (or `tables`) behind its quality gate; returns what each write did."""
    params = ConformParams(home_country_code=cfg.ingest.home_country_code)
    catalog = load_catalog(cfg)
    results = {}
    prof = profile.start(JOB, run.run_id, spark)
    for step in STEPS:
        if tables and step.table not in tables:
            continue
        missing = [k for k in step.feeds if not io.exists(spark, cfg, catalog.feed(*k.split(".")).bronze_table)]
        if missing:
            raise UserError(f"{step.table}: bronze input not ingested yet: {missing}; run `c360 ingest` first")
        frame = step.build(_inputs(spark, cfg, step, run_date), params)
        rebuild = catalog.table(step.table).mode == "rebuild"
        retract = retraction(catalog.table(step.table), run_date)
        with prof.phase("write", step.table):
            stats = pipeline.gated_write(
                spark, cfg, step.table, run,
                lambda: io.merge(spark, cfg, step.table, frame, run, delete_missing=rebuild, retract_where=retract))
        log.info("%s: version %s, +%d ~%d -%d", step.table, stats.version, stats.inserted, stats.updated, stats.deleted)
        results[step.table] = stats
    prof.save(cfg)
    return results
