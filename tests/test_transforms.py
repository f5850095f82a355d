"""Unit tests of the bronze and silver transforms on tiny inline frames (with null and malformed rows)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from c360.catalog import SourceColumn, SourceFeed
from c360.conform import ConformParams, build_customer_records, conform_card_customers
from c360.ingest import BatchInfo, build_bronze, build_quarantine, validate_records
from c360.standardize import clean_address_line, clean_email, clean_name, clean_postcode, phone_e164

FEED = SourceFeed(
    system="cards", feed="transactions", format="csv", delimiter=";", key=("txn_id",),
    columns=(
        SourceColumn("txn_id", "Txn ID", "string", required=True),
        SourceColumn("txn_at", "Txn Timestamp", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss", required=True),
        SourceColumn("amount", "Amount", "decimal", min=0, required=True),
        SourceColumn("currency", "Currency", "string", allowed=("GBP", "EUR")),
    ),
)
RAW_SCHEMA = "txn_id string, txn_at string, amount string, currency string, _corrupt_record string, _record_no long"
BATCH = BatchInfo("cards", "transactions", "cards/transactions/date=2026-10-01/t.csv", dt.date(2026, 10, 1),
                  "b1", dt.datetime(2026, 10, 1, 6))


def test_validate_records_tags_each_defect_once(spark):
    raw = spark.createDataFrame([
        ("T1", "2026-10-01T10:00:00", "12.50", "GBP", None, 1),
        ("T2", "2026-13-45T10:00:00", "3.00", "GBP", None, 2),     # malformed date
        ("T3", "2026-10-01T11:00:00", "-4.00", "GBP", None, 3),    # negative amount
        ("T4", "2026-10-01T12:00:00", "5.00", "XXX", None, 4),     # unknown currency
        ("T5", None, None, None, "T5;2026-10", 5),                 # truncated line
        ("T1", "2026-10-01T10:00:00", "99.00", "GBP", None, 6),    # repeated key
        (None, "2026-10-01T13:00:00", "1.00", "EUR", None, 7),     # null key
        ("T8", "2026-10-01T14:00:00", "abc", None, None, 8),       # malformed number, null currency is fine
        ("T9", "2026-10-01T15:00:00", "7.25", "eur", None, 9),
    ], RAW_SCHEMA)
    validated = validate_records(raw, FEED)
    reasons = {r._record_no: (r._defect.reason if r._defect else None, r._defect.field if r._defect else None)
               for r in validated.collect()}
    assert reasons == {
        1: (None, None), 2: ("malformed_date", "txn_at"), 3: ("negative_amount", "amount"),
        4: ("unknown_currency", "currency"), 5: ("truncated_record", None), 6: ("duplicate_key", None),
        7: ("missing_required", "txn_id"), 8: ("malformed_number", "amount"), 9: (None, None),
    }
    bronze = build_bronze(validated, FEED, BATCH)
    assert bronze.columns[:4] == ["txn_id", "txn_at", "amount", "currency"]
    assert sorted(r.txn_id for r in bronze.collect()) == ["T1", "T9"]
    quarantine = build_quarantine(validated, BATCH).filter(F.col("_record_no") == 5).first()
    assert quarantine.raw_record == "T5;2026-10" and quarantine._source_file == BATCH.source_file


def test_standardisers(spark):
    df = spark.createDataFrame([
        ("  j. o'BRIEN ", " John.Smith@Example.COM ", "07700 900123", "ls11ab", "12 high st."),
        ("Anne-marie", "not-an-email", "+44 (0)7700-900124", "SW1A 1AA", "3, Park Rd"),
        (None, None, "12345", None, None),
        ("", "", "0044 7700 900125", " ", ""),
    ], "name string, email string, phone string, postcode string, address string")
    out = df.select(
        clean_name(F.col("name")).alias("name"), clean_email(F.col("email")).alias("email"),
        phone_e164(F.col("phone"), "44").alias("phone"), clean_postcode(F.col("postcode")).alias("postcode"),
        clean_address_line(F.col("address")).alias("address"),
    )
    expected = spark.createDataFrame([
        ("J O'brien", "john.smith@example.com", "+447700900123", "LS1 1AB", "12 High Street"),
        # initcap capitalises after white space only; matching compares case-folded names anyway.
        ("Anne-marie", None, "+447700900124", "SW1A 1AA", "3 Park Road"),
        (None, None, None, None, None),
        (None, None, "+447700900125", None, None),
    ], out.schema)
    # pyspark.testing.assertDataFrameEqual imports pandas-on-Spark, which pandas 3 breaks.
    assert out.collect() == expected.collect()


def test_card_customer_names_and_addresses_are_split(spark):
    df = spark.createDataFrame([
        ("C1", "SMITH, John A", "1980-02-03", "j@x.com", "07700900123", "12 High St, Leeds", "LS1 1AB", "2026-10-01 10:00:00", 1, 1),
        ("C2", "Mary Jones", None, None, None, None, None, "2026-10-01 10:00:00", 1, 2),
    ], "card_customer_id string, full_name string, date_of_birth string, email string, mobile string, address string, "
       "postcode string, updated_at string, _landing_date int, _record_no int")
    typed = df.withColumn("date_of_birth", F.to_date("date_of_birth")).withColumn("updated_at", F.to_timestamp("updated_at"))
    rows = {r.source_record_id: r for r in conform_card_customers(typed, ConformParams()).collect()}
    assert (rows["C1"].first_name, rows["C1"].middle_name, rows["C1"].last_name) == ("John", "A", "Smith")
    assert (rows["C1"].address_line1, rows["C1"].city) == ("12 High Street", "Leeds")
    assert (rows["C2"].first_name, rows["C2"].middle_name, rows["C2"].last_name) == ("Mary", None, "Jones")
    assert rows["C2"].full_name == "Mary Jones" and rows["C1"].phone_e164 == "+447700900123"


PERSON_SCHEMA = (
    "source_system string, source_record_id string, title string, first_name string, middle_name string, "
    "last_name string, full_name string, date_of_birth date, email string, phone_e164 string, "
    "address_line1 string, city string, postcode string, country string, national_id string, "
    "linked_core_cust_no string, customer_since date, source_updated_at timestamp, _landing_date date, "
    "_record_no long"
)


def _person(address, updated, record_no):
    return ("core_banking", "C1", None, "John", None, "Smith", "John Smith", dt.date(1980, 1, 2), None, None,
            address, "Leeds", None, None, None, None, None, updated, updated.date(), record_no)


def test_customer_records_scd2_collapses_repeats_and_closes_versions(spark):
    records = spark.createDataFrame([
        _person("1 A Street", dt.datetime(2026, 10, 1, 9), 1),
        _person("1 A Street", dt.datetime(2026, 10, 2, 9), 1),     # unchanged repeat: no new version
        _person("9 B Road", dt.datetime(2026, 10, 3, 9), 4),
        _person("9 B Road", dt.datetime(2026, 10, 3, 9), 7),       # same update delivered twice
    ], PERSON_SCHEMA)
    scd = build_customer_records(records).orderBy("valid_from").collect()
    assert [(r.address_line1, r.is_current) for r in scd] == [("1 A Street", False), ("9 B Road", True)]
    assert scd[0].valid_to == scd[1].valid_from == dt.datetime(2026, 10, 3, 9)
    assert scd[1].valid_to is None and scd[0].record_hash != scd[1].record_hash


JSON_FEED = SourceFeed(
    system="digital", feed="events", format="json", delimiter=",", key=("event_id",),
    columns=(SourceColumn("event_id", "eventId", "string", required=True),
             SourceColumn("amount", "amount", "decimal")),
)


def test_landing_files_that_drift_from_their_contract_are_refused_by_name(spark, tmp_path):
    import pytest

    from c360.landing import LandingError, read_landing

    good = tmp_path / "good.jsonl"
    good.write_text('{"eventId": "E1", "amount": "1.50"}\n\n{"eventId": "E2"}\n{"eventId": "E3", "amo\n')
    rows = read_landing(spark, JSON_FEED, str(good)).orderBy("_record_no").collect()
    # The blank line is no record; the truncated one is kept for bronze to quarantine.
    assert [(r.event_id, r._record_no) for r in rows] == [("E1", 1), ("E2", 2), (None, 3)]
    assert rows[2]._corrupt_record is not None
    drifted = tmp_path / "drifted.jsonl"
    drifted.write_text('{"eventId": "E1"}\n{"eventId": "E2", "channel": "app"}\n')
    with pytest.raises(LandingError, match=r"drifted\.jsonl: records 2 have keys \['channel'\]"):
        read_landing(spark, JSON_FEED, str(drifted))
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("Txn ID;Txn Timestamp;Amount;Colour\nT1;2026-10-01T10:00:00;1.00;red\n")
    with pytest.raises(LandingError, match=r"t\.csv: header does not match .*unknown columns \['Colour'\], "
                                           r"missing columns \['currency'\]"):
        read_landing(spark, FEED, str(csv_file))


def test_catalog_names_follow_the_lakehouse_of_the_config(spark, tmp_path):
    from c360 import io
    from tests.conftest import make_config

    # Two lakehouses in one session (tests, benchmarks): quality queries join other tables by
    # catalog name, so each registration must point the names at the current config's lakehouse.
    name = "silver.consents"
    for rows, root in ((3, "first"), (5, "second"), (3, "first")):
        cfg = make_config(tmp_path / root)
        if not io.exists(spark, cfg, name):
            spark.range(rows).write.format("delta").save(io.location(cfg, name))
        assert name in io.register_catalog(spark, cfg)
        assert spark.table(name).count() == rows
