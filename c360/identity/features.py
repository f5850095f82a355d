"""Match records: current silver customer records shaped and normalised for Splink (one row per source record)."""

from __future__ import annotations

import itertools

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from c360.identity.conf import CrowdedConf

# Fields that can tie a record to a person; a record with none of them cannot be matched safely.
IDENTIFYING = ("dob", "email", "phone_e164", "address_line1", "postcode", "national_id", "linked_core_uid",
               "card_hashes")
UNRESOLVABLE = "no_identifying_fields"
# The columns Splink sees, in order: the model's comparisons and blocking rules use these names.
MATCH_COLUMNS = ("unique_id", "source_system", "source_record_id", "given_name", "given_initial", "name_keys",
                 "last_name", "last_name_key", "full_name", "dob", "dob_transposed", "dob_year", "dob_block", "email", "email_user",
                 "phone_e164", "address_line1", "postcode", "national_id", "linked_core_uid", "card_hashes",
                 "identity_fingerprint", "unresolvable_reason")
# What a record says about a person: a change here makes an incremental run re-link the record.
FINGERPRINT_COLUMNS = ("given_name", "name_keys", "last_name", "dob", "email", "phone_e164", "address_line1",
                       "postcode", "national_id", "linked_core_uid", "card_hashes")
SPLINK_COLUMNS = tuple(c for c in MATCH_COLUMNS if c not in ("identity_fingerprint", "unresolvable_reason",
                                                             "card_hashes", "linked_core_uid"))


def unique_id(system: Column, record_id: Column) -> Column:
    """The record id Splink and the xref use: SYSTEM:RECORD_ID."""
    return F.concat_ws(":", system, record_id)


def _letters(col: Column) -> Column:
    """Lower case letters only (accents and punctuation dropped), null when empty."""
    text = F.regexp_replace(F.lower(F.trim(col)), r"[^a-z ]", "")
    return F.when(F.length(F.trim(text)) > 0, F.trim(text))


def nickname_map(nicknames: dict[str, list[str]]) -> Column:
    """A map column: every known name (formal or short) -> the formal names it can stand for."""
    formal_of: dict[str, set[str]] = {}
    for formal, shorts in nicknames.items():
        for name in (formal, *shorts):
            formal_of.setdefault(name, set()).add(formal)
    pairs = [(F.lit(k), F.array(*[F.lit(v) for v in sorted(vs)])) for k, vs in sorted(formal_of.items())]
    return F.create_map(*itertools.chain.from_iterable(pairs)) if pairs else F.create_map()


def with_name_features(df: DataFrame, nicknames: dict[str, list[str]]) -> DataFrame:
    """Given name (first token), its initial, the formal names it may stand for, and a clean surname."""
    given = F.element_at(F.split(_letters(F.col("first_name")), " "), 1)
    formal = F.element_at(nickname_map(nicknames), given)
    return (
        df.withColumn("given_name", F.when(F.length(given) > 0, given))
        .withColumn("given_initial", F.substring("given_name", 1, 1))
        .withColumn("name_keys", F.when(F.col("given_name").isNotNull(), F.array_distinct(
            F.concat(F.array(F.col("given_name")), F.coalesce(formal, F.array().cast("array<string>"))))))
        .withColumn("last_name", F.regexp_replace(_letters(F.col("last_name")), " ", ""))
        # Soundex of the surname: blocking on it finds pairs with a typo in the surname.
        .withColumn("last_name_key", F.when(F.col("last_name").isNotNull(), F.soundex("last_name")))
        .withColumn("full_name", F.when(F.col("given_name").isNotNull() & F.col("last_name").isNotNull(),
                                        F.concat_ws(" ", "given_name", "last_name")))
    )


def with_dob_features(df: DataFrame) -> DataFrame:
    """Date of birth as ISO text, its day/month-transposed form (when that is a real date) and year."""
    dob = F.col("date_of_birth")
    swapped = F.make_date(F.year(dob), F.dayofmonth(dob), F.month(dob))
    transposable = (F.dayofmonth(dob) <= 12) & (F.dayofmonth(dob) != F.month(dob))
    return (
        df.withColumn("dob", F.date_format(dob, "yyyy-MM-dd"))
        .withColumn("dob_transposed", F.when(transposable, F.date_format(swapped, "yyyy-MM-dd")))
        .withColumn("dob_year", F.year(dob).cast("string"))
    )


def with_dob_block(df: DataFrame, crowded: CrowdedConf) -> DataFrame:
    """dob_block: the birth date to block on, null for a crowded value (placeholders such as 1900-01-01,
    dates clipped at an age limit) - blocking on it would compare all its holders with each other."""
    counts = df.groupBy("dob").agg(F.count("*").alias("_holders"))
    total = df.agg(F.count("*").alias("_total"))
    limit = F.greatest(F.col("_total") * F.lit(crowded.share), F.lit(crowded.min_records))
    crowded_dates = counts.crossJoin(total).filter(F.col("_holders") > limit).select(
        "dob", F.lit(True).alias("_crowded"))
    return df.join(crowded_dates, on="dob", how="left").withColumn(
        "dob_block", F.when(F.col("_crowded").isNull(), F.col("dob"))).drop("_crowded")


def card_hashes_by_record(accounts: DataFrame) -> DataFrame:
    """Card customer record -> sorted hashed card numbers it holds (unique_id, card_hashes)."""
    cards = accounts.filter((F.col("source_system") == "cards") & F.col("card_number_hash").isNotNull())
    return cards.groupBy(unique_id(F.col("source_system"), F.col("source_customer_id")).alias("unique_id")).agg(
        F.array_sort(F.collect_set("card_number_hash")).alias("card_hashes"))


def _fingerprint(columns: list[str]) -> Column:
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def build_match_records(records: DataFrame, accounts: DataFrame, nicknames: dict[str, list[str]],
                        crowded: CrowdedConf = CrowdedConf(share=0.001, min_records=20)) -> DataFrame:
    """Current customer records (+ card hashes) -> one normalised match record per source record."""
    current = records.filter(F.col("is_current"))
    base = current.select(
        unique_id(F.col("source_system"), F.col("source_record_id")).alias("unique_id"),
        "source_system", "source_record_id", "first_name", "last_name", "date_of_birth",
        F.lower(F.trim("email")).alias("email"), "phone_e164",
        F.lower(F.trim("address_line1")).alias("address_line1"),
        F.upper(F.regexp_replace(F.trim("postcode"), r"\s+", " ")).alias("postcode"),
        F.upper(F.col("national_id")).alias("national_id"),
        F.when(F.col("linked_core_cust_no").isNotNull(),
               unique_id(F.lit("core_banking"), F.col("linked_core_cust_no"))).alias("linked_core_uid"),
    )
    shaped = (
        base.transform(lambda d: with_name_features(d, nicknames))
        .transform(with_dob_features)
        .transform(lambda d: with_dob_block(d, crowded))
        .withColumn("email_user", F.regexp_extract("email", r"^([^@]+)@", 1))
        .withColumn("email_user", F.when(F.col("email_user") != "", F.col("email_user")))
        .join(card_hashes_by_record(accounts), on="unique_id", how="left")
    )
    has_identifier = F.lit(False)
    for col in IDENTIFYING:
        has_identifier = has_identifier | F.col(col).isNotNull()
    return (
        shaped.withColumn("identity_fingerprint", _fingerprint(list(FINGERPRINT_COLUMNS)))
        .withColumn("unresolvable_reason", F.when(~has_identifier, F.lit(UNRESOLVABLE)))
        .select(*MATCH_COLUMNS)
    )
