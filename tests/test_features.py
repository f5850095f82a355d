"""Feature store: point-in-time customer features, churn labels, consent and purpose (tiny inline silver frames)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from c360 import features, io
from c360.errors import UserError

T = dt.date(2026, 7, 31)
D, TS = dt.date, dt.datetime


def _frame(spark, cfg, table: str, rows: list[dict]):
    """Rows of a catalog table with its exact schema; columns a row leaves out are null."""
    schema = io.schema_of(io.spec(cfg, table))
    decimal = {f.name for f in schema.fields if f.dataType.typeName() == "decimal"}

    def value(row: dict, name: str):
        v = row.get(name)
        return Decimal(str(v)) if name in decimal and v is not None else v

    return spark.createDataFrame([tuple(value(r, f.name) for f in schema.fields) for r in rows], schema)


def _silver(spark, cfg, **changes: list[dict]) -> dict:
    """A tiny bank: CUS1 holds core, card, digital and CRM records; CUS2 joins after T; one record is unresolved."""
    rows = {
        "customer_xref": [
            {"source_system": "core_banking", "source_record_id": "C1", "customer_id": "CUS1"},
            {"source_system": "cards", "source_record_id": "K1", "customer_id": "CUS1"},
            {"source_system": "digital", "source_record_id": "D1", "customer_id": "CUS1"},
            {"source_system": "crm", "source_record_id": "M1", "customer_id": "CUS1"},
            {"source_system": "core_banking", "source_record_id": "C2", "customer_id": "CUS2"},
            {"source_system": "core_banking", "source_record_id": "C3", "customer_id": "CUS3"},
            {"source_system": "crm", "source_record_id": "M9", "customer_id": None},   # unresolvable
        ],
        "golden_customers": [
            {"customer_id": "CUS1", "date_of_birth": D(1980, 9, 1), "city": "Leeds", "customer_since": D(2015, 1, 1),
             "valid_from": TS(2026, 10, 1), "valid_to": TS(2026, 10, 2), "is_current": False},
            {"customer_id": "CUS1", "date_of_birth": D(1980, 9, 1), "city": "York", "customer_since": D(2015, 1, 1),
             "valid_from": TS(2026, 10, 2), "is_current": True},
            {"customer_id": "CUS2", "date_of_birth": D(1999, 1, 1), "city": "Bath", "customer_since": D(2026, 8, 1),
             "valid_from": TS(2026, 10, 1), "is_current": True},
            {"customer_id": "CUS3", "date_of_birth": None, "city": None, "customer_since": D(2020, 3, 1),
             "valid_from": TS(2026, 10, 1), "is_current": True},
        ],
        "accounts": [
            {"source_system": "core_banking", "account_id": "A1", "source_customer_id": "C1", "product_type": "current",
             "opened_date": D(2015, 1, 1), "status": "active", "source_updated_at": TS(2015, 1, 1)},
            {"source_system": "core_banking", "account_id": "A2", "source_customer_id": "C1", "product_type": "savings",
             "opened_date": D(2016, 1, 1), "closed_date": D(2026, 7, 15), "status": "closed",
             "source_updated_at": TS(2026, 7, 15)},
            {"source_system": "cards", "account_id": "CA1", "source_customer_id": "K1", "product_type": "credit_card",
             "opened_date": D(2020, 1, 1), "status": "active", "source_updated_at": TS(2020, 1, 1)},
            {"source_system": "core_banking", "account_id": "A3", "source_customer_id": "C2", "product_type": "current",
             "opened_date": D(2026, 8, 1), "status": "active", "source_updated_at": TS(2026, 8, 1)},
            {"source_system": "core_banking", "account_id": "A4", "source_customer_id": "C3", "product_type": "current",
             "opened_date": D(2020, 3, 1), "status": "dormant", "source_updated_at": TS(2026, 9, 10, 9)},
        ],
        "balances": [
            {"account_id": "A1", "balance_date": D(2026, 4, 30), "balance": 1000},
            {"account_id": "A1", "balance_date": D(2026, 6, 30), "balance": 800},
            {"account_id": "A1", "balance_date": D(2026, 7, 31), "balance": 500},
            {"account_id": "A1", "balance_date": D(2026, 8, 31), "balance": 100},
            {"account_id": "A2", "balance_date": D(2026, 4, 30), "balance": 200},
            {"account_id": "A2", "balance_date": D(2026, 6, 30), "balance": 50},
            {"account_id": "A4", "balance_date": D(2026, 7, 31), "balance": None},
        ],
        "card_transactions": [
            {"txn_id": "T1", "account_id": "CA1", "txn_at": TS(2026, 7, 20, 12), "amount": 50},
            {"txn_id": "T2", "account_id": "CA1", "txn_at": TS(2026, 7, 31, 23, 59), "amount": 25},
            {"txn_id": "T3", "account_id": "CA1", "txn_at": TS(2026, 8, 1, 0, 0), "amount": 999},
            {"txn_id": "T4", "account_id": "CA1", "txn_at": TS(2026, 6, 1), "amount": 7},
        ],
        "digital_events": [
            {"event_id": "E1", "digital_id": "D1", "event_type": "login", "event_at": TS(2026, 7, 30, 8)},
            {"event_id": "E2", "digital_id": "D1", "event_type": "logout", "event_at": TS(2026, 7, 30, 9)},
            {"event_id": "E3", "digital_id": "D1", "event_type": "login", "event_at": TS(2026, 8, 1, 8)},
        ],
        "interactions": [
            {"interaction_id": "I1", "contact_id": "M1", "interaction_at": TS(2026, 6, 15, 10)},
            {"interaction_id": "I2", "contact_id": "M9", "interaction_at": TS(2026, 7, 1, 10)},
        ],
        "offers": [{"offer_id": "O1", "contact_id": "M1", "offered_at": TS(2026, 4, 20)},
                   {"offer_id": "O2", "contact_id": "M1", "offered_at": TS(2026, 7, 20)}],
        "offer_responses": [{"offer_id": "O1", "response": "accepted", "responded_at": TS(2026, 5, 1)},
                            {"offer_id": "O2", "response": "accepted", "responded_at": TS(2026, 8, 3)}],
        "complaints": [
            {"complaint_id": "Q1", "customer_ref_system": "core_banking", "customer_ref": "C1",
             "received_at": TS(2026, 7, 1), "status": "resolved", "resolved_at": TS(2026, 8, 20)},
            {"complaint_id": "Q2", "customer_ref_system": "cards", "customer_ref": "K1", "received_at": TS(2026, 8, 2)},
        ],
        "consents": [
            {"consent_id": "S1", "customer_ref_system": "core_banking", "customer_ref": "C1", "purpose": "profiling",
             "status": "granted", "recorded_at": TS(2026, 1, 1)},
            {"consent_id": "S2", "customer_ref_system": "digital", "customer_ref": "D1", "purpose": "profiling",
             "status": "withdrawn", "recorded_at": TS(2026, 8, 10)},
            {"consent_id": "S3", "customer_ref_system": "crm", "customer_ref": "M1", "purpose": "marketing",
             "status": "withdrawn", "recorded_at": TS(2026, 3, 1)},
        ],
    }
    rows.update(changes)
    return {name: _frame(spark, cfg, f"silver.{name}", r) for name, r in rows.items()}


@pytest.fixture(scope="module")
def registry(cfg):
    return features.load_registry(cfg.conf_dir)


def _features(spark, registry, silver, dates=(T,)) -> dict:
    frame = features.build_customer_daily(silver, features.as_of_frame(spark, list(dates)), registry.purposes, "r")
    return {(r["customer_id"], r["as_of_date"]): r.asDict() for r in frame.drop("built_run_id").collect()}


def test_features_are_computed_as_of_the_date(spark, cfg, registry):
    rows = _features(spark, registry, _silver(spark, cfg))
    assert set(rows) == {("CUS1", T), ("CUS3", T)}, "CUS2 joined after T; the unresolved record is nobody"
    one = rows[("CUS1", T)]
    assert (one["age_years"], one["age_band"], one["tenure_band"]) == (45, "45-59", "10y+")
    assert one["region"] == "Leeds", "the earliest golden version stands for dates before the first load"
    assert (one["products_open"], one["everyday_open"], one["cards_open"], one["lending_open"]) == (2, 1, 1, 0)
    assert (one["product_holding"], one["accounts_closed_90d"]) == ("credit_card+current", 1)
    # Deposits on T: A1's 500 (A2 closed on 15 July); 30 days back (1 July): A1 800 + A2 50.
    assert one["balance_deposits"] == 500.0
    assert one["balance_change_30d"] == pytest.approx((500 - 850) / 850)
    assert one["balance_change_90d"] == pytest.approx((500 - 1200) / 1200)
    assert (one["txn_count_30d"], one["txn_amount_30d"], one["logins_30d"]) == (2, 75.0, 1)
    assert (one["complaints_90d"], one["interactions_90d"], one["offers_accepted_365d"]) == (1, 1, 1)
    assert one["purposes_allowed"] == ["credit_risk", "fraud_prevention", "retention", "service"]
    three = rows[("CUS3", T)]
    assert (three["age_years"], three["age_band"], three["products_open"], three["balance_deposits"]) == (
        None, None, 1, 0.0)
    assert three["purposes_allowed"] == ["credit_risk", "fraud_prevention", "service"], "no consent: none needing it"


def test_no_source_row_dated_after_the_as_of_date_changes_a_feature(spark, cfg, registry):
    before = _features(spark, registry, _silver(spark, cfg))
    base = _silver(spark, cfg)
    later = {
        "balances": [r.asDict() | ({"balance": -5} if r["balance_date"] > T else {})
                     for r in base["balances"].collect()] + [{"account_id": "A1", "balance_date": D(2026, 8, 1),
                                                              "balance": 1}],
        "card_transactions": [r.asDict() for r in base["card_transactions"].collect() if r["txn_at"] < TS(2026, 8, 1)]
        + [{"txn_id": "T9", "account_id": "CA1", "txn_at": TS(2026, 8, 1, 0, 0, 1), "amount": 5000}],
        "digital_events": [r.asDict() for r in base["digital_events"].collect()]
        + [{"event_id": "E9", "digital_id": "D1", "event_type": "login", "event_at": TS(2026, 9, 1)}],
        "complaints": [r.asDict() for r in base["complaints"].collect()]
        + [{"complaint_id": "Q9", "customer_ref_system": "core_banking", "customer_ref": "C1",
            "received_at": TS(2026, 8, 1)}],
        "consents": [r.asDict() for r in base["consents"].collect()]
        + [{"consent_id": "S9", "customer_ref_system": "core_banking", "customer_ref": "C1", "purpose": "marketing",
            "status": "granted", "recorded_at": TS(2026, 8, 1)}],
        "accounts": [r.asDict() for r in base["accounts"].collect()]
        + [{"source_system": "core_banking", "account_id": "A8", "source_customer_id": "C1",
            "product_type": "mortgage", "opened_date": D(2026, 8, 1), "status": "active"}],
        "offer_responses": [r.asDict() | {"responded_at": TS(2026, 8, 1)} if r["offer_id"] == "O2" else r.asDict()
                            for r in base["offer_responses"].collect()],
        "interactions": [r.asDict() for r in base["interactions"].collect()]
        + [{"interaction_id": "I9", "contact_id": "M1", "interaction_at": TS(2026, 8, 1)}],
    }
    assert _features(spark, registry, _silver(spark, cfg, **later)) == before


def test_later_as_of_dates_see_later_rows(spark, cfg, registry):
    late_day = D(2026, 8, 30)
    rows = _features(spark, registry, _silver(spark, cfg), dates=(T, late_day))
    late = rows[("CUS1", late_day)]
    # The 30 days up to 30 August are 1-30 August: T3 (1 August, 00:00) counts, T2 (31 July, 23:59) does not.
    assert (late["txn_count_30d"], late["complaints_90d"], late["offers_accepted_365d"]) == (1, 2, 2)
    assert "retention" not in late["purposes_allowed"], "profiling consent withdrawn on 10 August"
    assert rows[("CUS2", late_day)]["products_open"] == 1


def test_churn_labels_see_only_windows_that_have_passed(spark, cfg):
    silver = _silver(spark, cfg)
    dates = [D(2026, 6, 1), D(2026, 7, 31), D(2026, 8, 15)]
    labels = features.build_churn_labels(silver["accounts"], silver["customer_xref"],
                                         features.as_of_frame(spark, dates), 60, D(2026, 10, 1), "r")
    got = {(r["customer_id"], r["as_of_date"]): (r["churned"], r["churned_on"]) for r in labels.collect()}
    # CUS1 keeps A1 open (A2's closure alone is no churn); CUS3's only account went dormant on 10 September;
    # 15 August's window ends after 1 October, so it has no label yet.
    assert got == {("CUS1", D(2026, 6, 1)): (0, None), ("CUS3", D(2026, 6, 1)): (0, None),
                   ("CUS1", D(2026, 7, 31)): (0, None), ("CUS3", D(2026, 7, 31)): (1, D(2026, 9, 10))}


def test_a_purpose_a_feature_does_not_allow_is_refused_naming_both(registry):
    table = features.CUSTOMER_DAILY
    registry.check_purpose(["tenure_days", "balance_change_90d"], "retention", table)
    with pytest.raises(UserError, match=r"purpose 'fraud_prevention' may not use feature 'balance_change_90d'"):
        registry.check_purpose(["tenure_days", "balance_change_90d"], "fraud_prevention", table)
    with pytest.raises(UserError, match="unknown purpose 'spying'"):
        registry.check_purpose(["tenure_days"], "spying", table)
    with pytest.raises(UserError, match="no registered feature"):
        registry.check_purpose(["shoe_size"], "retention", table)


def test_history_dates_step_back_from_the_run_date(registry):
    dates = features.history_dates(registry, D(2026, 10, 3))
    assert dates[-1] == D(2026, 10, 3) and dates[0] == D(2026, 10, 3) - dt.timedelta(days=registry.history_lookback_days)
    assert {(b - a).days for a, b in zip(dates, dates[1:])} == {registry.history_step_days}


def test_offer_labels_count_offers_made_after_the_date_and_answered_in_time(spark, cfg):
    offers = [{"offer_id": "O3", "contact_id": "M1", "product_code": "SAV", "offered_at": TS(2026, 8, 5, 10)},
              {"offer_id": "O4", "contact_id": "M1", "product_code": "LOAN", "offered_at": TS(2026, 8, 20, 10)},
              {"offer_id": "O5", "contact_id": "M1", "product_code": "SAV", "offered_at": TS(2026, 9, 15, 10)},
              {"offer_id": "O6", "contact_id": "M1", "product_code": "CARD", "offered_at": TS(2026, 7, 31, 23)},
              {"offer_id": "O7", "contact_id": "M9", "product_code": "SAV", "offered_at": TS(2026, 8, 6, 10)}]
    responses = [{"offer_id": "O3", "response": "accepted", "responded_at": TS(2026, 8, 7, 9)},
                 {"offer_id": "O4", "response": "accepted", "responded_at": TS(2026, 9, 25, 9)},   # too late
                 {"offer_id": "O5", "response": "accepted", "responded_at": TS(2026, 9, 16, 9)}]
    silver = _silver(spark, cfg, offers=offers, offer_responses=responses)
    labels = features.build_offer_labels(silver["offers"], silver["offer_responses"], silver["customer_xref"],
                                         features.as_of_frame(spark, [T, D(2026, 8, 30)]), 30, 30,
                                         D(2026, 10, 1), "r")
    got = {(r["customer_id"], r["as_of_date"], r["product_code"]): (r["offers"], r["accepted"], r["first_offered_on"])
           for r in labels.collect()}
    # O6 was made on T itself, O5 after the window, O7 to an unresolved contact; 30 August's window (and
    # its answers) ends after 1 October, so it has no labels yet.
    assert got == {("CUS1", T, "SAV"): (1, 1, D(2026, 8, 5)), ("CUS1", T, "LOAN"): (1, 0, D(2026, 8, 20))}
