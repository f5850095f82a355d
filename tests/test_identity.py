"""Identity resolution: tricky hand-written records and a small generated bank through the real job.

The module fixture generates a bank, builds its silver tables with the real bronze validation and
silver transforms (Delta writes without the per-table GX gates, which test_pipeline_integration
covers), adds hand-written tricky records, and resolves them. Later tests change inputs and run again.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import glob
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from c360 import io, landing, pipeline
from c360.catalog import load_catalog
from c360.datagen import DatagenParams, generate_bank
from c360.identity import clustering, evaluation, review, stable_ids, survivorship
from c360.identity.conf import load_identity_conf
from c360.identity.explain import explain_record, render
from c360.run import RunContext
from c360.identity import service
from jobs import bronze_ingest, publish_gold, silver_conform
from tests.conftest import make_config

START = dt.date(2026, 10, 1)
FACT_TABLES = ("silver.customer_records", "silver.accounts", "silver.balances", "silver.card_transactions",
               "silver.digital_events", "silver.interactions", "silver.consents")
CARD_HASH = "ab" * 32
# Hand-written records: (system, id, first, middle, last, dob, email, phone, address, city, postcode, national id,
# CRM link to a core customer number). Fixture persons are the groups in EXPECTED.
TRICKY = [
    ("core_banking", "C90000001", "William", "James", "Harrison", "1980-04-12", "w.harrison@example.com", "+447700900001", "10 Test Lane", "Leeds", "ZZ1 1AA", "ZX000001A", None),
    ("cards", "CC90000001", "Bill", None, "Harrison", "1980-04-12", None, "+447700900001", "10 Test Lane", "Leeds", "ZZ1 1AA", None, None),
    ("crm", "003TESTLINK001", "W", None, "Harrison", None, None, None, None, None, "ZZ1 1AA", None, "C90000001"),
    ("core_banking", "C90000002", "Katherine", None, "Walsh", "1975-09-30", "kwalsh75@example.com", "+447700900002", "22 Sample Road", "York", "ZZ2 2BB", "ZX000002B", None),
    ("crm", "003TESTTYPO002", "Katharine", None, "Walsh", "1975-09-30", None, "+447700900002", None, None, "ZZ2 2BB", None, None),
    ("core_banking", "C90000003", "Oliver", None, "Grant", "1968-02-20", "ogrant68@example.com", "+447700900003", "5 Example Street", "Hull", "ZZ3 3CC", "ZX000003C", None),
    ("cards", "CC90000003", "Grant", None, "Oliver", "1968-02-20", None, "+447700900003", "5 Example Street", "Hull", "ZZ3 3CC", None, None),
    ("core_banking", "C90000004", "Emma", None, "Clarke", "1990-06-15", "emma.clarke90@example.com", "+447700900004", "1 Old Road", "Bath", "ZZ4 4DD", "ZX000004D", None),
    ("digital", "d0000000-test-4000-8000-000000000004", "Emma", None, "Fletcher", "1990-06-15", "emma.clarke90@example.com", "+447700900044", None, None, None, None, None),
    ("core_banking", "C90000005", "Jack", None, "Turner", "1995-03-03", "jack.turner95@example.com", "+447700900005", "8 Twin Close", "Derby", "ZZ5 5EE", "ZX000005E", None),
    ("cards", "CC90000005", "Jack", None, "Turner", "1995-03-03", None, "+447700900005", "8 Twin Close", "Derby", "ZZ5 5EE", None, None),
    ("core_banking", "C90000006", "Harry", None, "Turner", "1995-03-03", "harry.turner95@example.com", "+447700900006", "8 Twin Close", "Derby", "ZZ5 5EE", "ZX000006F", None),
    ("crm", "003TESTTWIN006", "Harry", None, "Turner", "1995-03-03", None, "+447700900006", None, None, "ZZ5 5EE", None, None),
    ("core_banking", "C90000007", "Robert", None, "Hughes", "1950-01-20", None, "+447700900007", "3 Elder Way", "Ely", "ZZ7 7GG", "ZX000007G", None),
    ("core_banking", "C90000008", "Robert", None, "Hughes", "1978-11-05", None, "+447700900008", "3 Elder Way", "Ely", "ZZ7 7GG", "ZX000008H", None),
    ("crm", "003TESTLOOK008", "Rob", None, "Hughes", None, None, None, None, None, "ZZ7 7GG", None, None),
    ("cards", "CC90000009", "Sam", None, "Price", "1985-05-05", None, "+447700900009", "9 Card Road", "Bury", "ZZ9 9JJ", None, None),
    ("cards", "CC90000010", "Samuel", None, "Price", None, "sam.price@example.com", None, "90 Other Road", "Bury", "ZZ9 9KK", None, None),
    ("crm", "003TESTEMPTY01", "Jane", None, "Doe", None, None, None, None, None, None, None, None),
    ("core_banking", "C90000011", "Lucy", None, "Marsh", "1971-07-07", None, "+447700900011", "4 First Street", "Wells", "ZZ11 1AA", "ZX000011K", None),
    ("cards", "CC90000011", "Lucy", None, "Marsh", None, "lucy.marsh@example.com", "+447700900111", "77 Second Street", "Wells", "ZZ11 9ZZ", None, None),
]
EXPECTED = [
    {"core_banking:C90000001", "cards:CC90000001", "crm:003TESTLINK001"},        # nickname, initial + CRM link
    {"core_banking:C90000002", "crm:003TESTTYPO002"},                            # typo in the given name
    {"core_banking:C90000003", "cards:CC90000003"},                              # given name and surname swapped
    {"core_banking:C90000004", "digital:d0000000-test-4000-8000-000000000004"},  # married name, same DOB + e-mail
    {"core_banking:C90000005", "cards:CC90000005"},                              # twin 1
    {"core_banking:C90000006", "crm:003TESTTWIN006"},                            # twin 2, same address and DOB
    {"core_banking:C90000007"},                                                  # look-alike senior
    {"core_banking:C90000008"},                                                  # look-alike junior
    {"crm:003TESTLOOK008"},                                                      # no DOB: could be either Hughes
    {"cards:CC90000009", "cards:CC90000010"},                                    # duplicate card customer, one card
    {"crm:003TESTEMPTY01"},                                                      # nothing identifying
    {"core_banking:C90000011"},                                                  # one person, nothing shared...
    {"cards:CC90000011"},                                                        # ...until a record links both
]


def tricky_frame(spark, cfg, rows, updated: dt.datetime):
    """Hand-written records as current silver.customer_records rows."""
    out = []
    for (system, rid, first, middle, last, dob, email, phone, address, city, postcode, nid, link) in rows:
        out.append({
            "source_system": system, "source_record_id": rid, "title": None, "first_name": first,
            "middle_name": middle, "last_name": last, "full_name": " ".join(p for p in (first, middle, last) if p) or None,
            "date_of_birth": dt.date.fromisoformat(dob) if dob else None, "email": email, "phone_e164": phone,
            "address_line1": address, "city": city, "postcode": postcode, "country": "GB" if address else None,
            "national_id": nid, "linked_core_cust_no": link, "customer_since": dt.date(2015, 1, 1),
            "source_updated_at": updated, "valid_from": updated, "valid_to": None, "is_current": True,
            "record_hash": None})
    frame = spark.createDataFrame(out, io.schema_of(io.spec(cfg, "silver.customer_records")))
    return silver_conform.with_record_hash(frame, ["source_system", "source_record_id", "valid_from"])


def add_records(spark, cfg, rows, updated: dt.datetime, run) -> None:
    """Append hand-written records (new keys) to silver.customer_records."""
    io.append(spark, cfg, "silver.customer_records", tricky_frame(spark, cfg, rows, updated), run)


def _feed_frame(spark, cfg, key: str):
    feed = load_catalog(cfg).feed(*key.split("."))
    frame = None
    for path in sorted(glob.glob(f"{cfg.path(cfg.lakehouse.landing)}/{feed.system}/{feed.feed}/date=*/*")):
        day = dt.date.fromisoformat(path.split("date=")[1][:10])
        validated = bronze_ingest.validate_records(landing.read_landing(spark, feed, path), feed)
        part = validated.filter(F.col("_defect").isNull()).withColumn("_landing_date", F.lit(day))
        frame = part if frame is None else frame.unionByName(part)
    return silver_conform.typed(frame, feed)


def _card_accounts(spark):
    """The one card both duplicate card customer records hold."""
    rows = [("cards", f"CA9{i}", cust, "credit_card", "GBP", dt.date(2020, 1, 1), None, "active", 1000, CARD_HASH,
             dt.datetime(2026, 9, 1)) for i, cust in enumerate(("CC90000009", "CC90000010"))]
    frame = spark.createDataFrame(rows, "source_system string, account_id string, source_customer_id string, "
                                  "product_type string, currency string, opened_date date, closed_date date, "
                                  "status string, credit_limit int, card_number_hash string, source_updated_at timestamp")
    frame = frame.withColumn("credit_limit", F.col("credit_limit").cast("decimal(18,2)"))
    return silver_conform.with_record_hash(frame, ["source_system", "account_id"])


def build_silver(spark, cfg, run) -> None:
    """Silver tables of the generated landing files (real validation and transforms) plus the tricky records."""
    extra = {"silver.customer_records": tricky_frame(spark, cfg, TRICKY, dt.datetime(2026, 9, 30, 12)),
             "silver.accounts": _card_accounts(spark)}
    for step in silver_conform.STEPS:
        if step.table in FACT_TABLES:
            frame = step.build({k: _feed_frame(spark, cfg, k) for k in step.feeds}, silver_conform.ConformParams())
            if step.table in extra:
                frame = frame.unionByName(extra[step.table])
            # Fresh tables: an append is the cheapest correct first write.
            io.append(spark, cfg, step.table, frame, run)


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    """A 150-customer bank plus the tricky records, resolved once (DuckDB backend, model trained), and that
    first resolution evaluated against the generator's truth (explicitly: a run never evaluates itself)."""
    cfg = make_config(tmp_path_factory.mktemp("identity"))
    generate_bank(DatagenParams(customers=150, seed=11, start_date=START, days=1),
                  Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)), cfg.conf_dir / "sources.yaml")
    build_silver(spark, cfg, pipeline.new_run(cfg, "test_setup", START, "test__setup"))
    run = pipeline.new_run(cfg, service.JOB, START, "test__resolve1")
    report = service.run_resolution(spark, cfg, run)
    evaluated = evaluation.evaluate(spark, load_identity_conf(cfg),
                                    evaluation.current_assignment(io.read(spark, cfg, service.XREF)))
    return cfg, report, evaluated


def _clusters_of(spark, cfg, records: set[str]) -> list[set[str]]:
    xref = io.read(spark, cfg, "silver.customer_xref").select(
        F.concat_ws(":", "source_system", "source_record_id").alias("uid"), "customer_id").collect()
    by_customer: dict[str, set[str]] = {}
    for r in xref:
        if r.uid in records:
            by_customer.setdefault(r.customer_id, set()).add(r.uid)
    return sorted(by_customer.values(), key=sorted)


def _ids(spark, cfg) -> dict[str, str]:
    return {r.uid: r.customer_id for r in io.read(spark, cfg, "silver.customer_xref").select(
        F.concat_ws(":", "source_system", "source_record_id").alias("uid"), "customer_id").collect()}


@pytest.mark.slow
def test_tricky_records_resolve_as_their_persons(spark, lakehouse):
    cfg, report, _ = lakehouse
    fixture = set().union(*EXPECTED)
    assert _clusters_of(spark, cfg, fixture) == sorted(EXPECTED, key=sorted)
    assert report.mode == "full" and report.trained and report.comparisons > 0


@pytest.mark.slow
def test_generated_bank_accuracy_and_look_alikes(lakehouse):
    _, report, evaluated = lakehouse
    assert evaluated.accuracy["pairwise_f1"] >= 0.95, evaluated.accuracy
    assert evaluated.accuracy["bcubed_f1"] >= 0.95
    assert evaluated.look_alike_merges == 0
    assert report.statistics["records"] == evaluated.accuracy["evaluated_records"] + len(TRICKY)


@pytest.mark.slow
def test_xref_says_how_each_record_was_linked(spark, lakehouse):
    cfg, *_ = lakehouse
    rows = {f"{r.source_system}:{r.source_record_id}": r for r in io.read(spark, cfg, "silver.customer_xref").collect()}
    empty = rows["crm:003TESTEMPTY01"]
    assert (empty.match_rule, empty.unresolvable_reason) == ("unresolvable", "no_identifying_fields")
    assert rows["crm:003TESTLINK001"].match_rule == "deterministic:crm_core_link"
    assert rows["cards:CC90000010"].match_rule == "deterministic:card_hash"
    assert rows["digital:d0000000-test-4000-8000-000000000004"].match_rule == "deterministic:email_dob"
    assert rows["cards:CC90000003"].match_rule == "probabilistic" and rows["cards:CC90000003"].match_probability >= 0.9
    assert rows["core_banking:C90000007"].match_rule == "singleton"
    assert {r.model_version for r in rows.values()} == {"v0001"}


@pytest.mark.slow
def test_rerun_of_the_same_date_changes_nothing(spark, lakehouse):
    cfg, *_ = lakehouse
    tables = ("silver.customer_xref", "silver.golden_customers", "silver.identity_events", "silver.identity_review")
    before = {t: io.current_version(spark, cfg, t) for t in tables}
    report = service.run_resolution(spark, cfg, pipeline.new_run(cfg, service.JOB, START, "rerun"))
    assert report.mode == "incremental" and report.comparisons == 0 and not report.trained
    assert {t: io.current_version(spark, cfg, t) for t in tables} == before
    assert all(w["version"] is None for w in report.writes.values())


@pytest.mark.slow
def test_explain_shows_each_comparison_level_and_weight(spark, lakehouse):
    cfg, *_ = lakehouse
    explanation = explain_record(spark, cfg, "cards:CC90000001")
    others = {p.other for p in explanation.pairs}
    assert others == {"core_banking:C90000001", "crm:003TESTLINK001"}
    core = next(p for p in explanation.pairs if p.other == "core_banking:C90000001")
    levels = {s.comparison: s.level for s in core.steps}
    assert levels["name"] == "Same surname, nickname of the same given name"
    assert levels["phone_e164"].startswith("Exact match") and core.match_weight > 0
    text = "\n".join(render(explanation))
    assert "cards:CC90000001 -> customer " + explanation.customer_id in text and "nickname" in text


@pytest.mark.slow
def test_spark_backend_agrees_with_duckdb(spark, lakehouse):
    cfg, *_ = lakehouse
    fixture = set().union(*EXPECTED)
    # The tricky records and a slice of the bank keep Splink-on-Spark's many small jobs few.
    clusters = {}
    for backend in ("duckdb", "spark"):
        conf = load_identity_conf(cfg, backend=backend)
        inputs = service.read_inputs(spark, cfg, conf)
        every = inputs.match
        subset = every.filter(F.col("unique_id").isin(*fixture) | (F.crc32("unique_id") % 16 == 0))
        inputs = dataclasses.replace(inputs, match=subset)
        run = pipeline.new_run(cfg, service.JOB, START, f"test__{backend}")
        linked = service.link_records(spark, conf, run, inputs, full_relink=True)
        assert linked.mode == "full" and not linked.trained and linked.scored.comparisons > 0
        clusters[backend] = linked.clusters.withColumnRenamed("cluster_key", "customer_id").persist()
        linked.release()
        inputs.release()
        every.unpersist()
    agreement = evaluation.accuracy(clusters["spark"], clusters["duckdb"].withColumnRenamed("customer_id", "person_id"))
    assert agreement["pairwise_f1"] >= 0.99, agreement
    by_key: dict[str, set[str]] = {}
    for r in clusters["spark"].filter(F.col("unique_id").isin(*fixture)).collect():
        by_key.setdefault(r.customer_id, set()).add(r.unique_id)
    assert sorted(by_key.values(), key=sorted) == sorted(EXPECTED, key=sorted)
    # Splink on Spark caches each intermediate table; closing the backend released them.
    assert not [t.name for t in spark.catalog.listTables() if t.isTemporary and t.name.startswith("__splink__")]
    for frame in clusters.values():
        frame.unpersist()


@pytest.mark.slow
def test_gold_customer_360_published_and_gated(spark, lakehouse):
    cfg, *_ = lakehouse
    run = pipeline.new_run(cfg, publish_gold.JOB, START, "test__gold")
    stats = publish_gold.publish(spark, cfg, run)
    gold = io.read(spark, cfg, "gold.customer_360")
    customers = io.read(spark, cfg, "silver.customer_xref").select("customer_id").distinct().count()
    assert stats.inserted == gold.count() == customers
    card_dupes = gold.filter(F.array_contains("source_systems", "cards") & (F.col("count_cards_records") == 2))
    assert card_dupes.filter(F.col("count_credit_cards") == 2).count() >= 1
    assert gold.filter((F.col("product_penetration") < 0) | (F.col("product_penetration") > 1)).count() == 0
    assert publish_gold.publish(spark, cfg, run).version is None
    assert io.spec(cfg, "gold.customer_360").change_data_feed


@pytest.mark.slow
def test_stable_ids_merge_split_and_steward_decisions(spark, lakehouse):
    cfg, *_ = lakehouse
    conf = load_identity_conf(cfg)
    before = _ids(spark, cfg)
    day2 = START + dt.timedelta(days=1)
    run = pipeline.new_run(cfg, "test_setup", day2, "test__setup2")
    # A record linking Lucy Marsh's two records (kept apart so far), and a new record of twin Harry.
    add_records(spark, cfg, [
        ("crm", "003TESTBRIDGE1", "Lucy", None, "Marsh", "1971-07-07", "lucy.marsh@example.com", "+447700900111", None, None, "ZZ11 1AA", None, "C90000011"),
        ("digital", "d0000000-test-4000-8000-000000000006", "Harry", None, "Turner", "1995-03-03", "harry.turner95@example.com", "+447700900006", None, None, None, None, None),
    ], dt.datetime(2026, 10, 1, 12), run)
    # Steward: the typo pair is two people after all; the empty CRM contact is Robert Hughes senior
    # (overrides file); the undated "Rob Hughes" the conflict kept apart is the junior (review queue).
    overrides = Path(conf.overrides.file)
    overrides.parent.mkdir(parents=True, exist_ok=True)
    with open(overrides, "w", newline="") as fh:
        csv.writer(fh).writerows([("record_l", "record_r", "decision", "reason", "decided_by"),
                                  ("core_banking:C90000002", "crm:003TESTTYPO002", "no_match", "checked", "ann"),
                                  ("crm:003TESTEMPTY01", "core_banking:C90000007", "match", "called", "ann")])
    queue = {(r.unique_id_l, r.unique_id_r): r.status for r in io.read(spark, cfg, "silver.identity_review").collect()}
    junior = ("core_banking:C90000008", "crm:003TESTLOOK008")
    assert queue[junior] == "pending" and queue[("core_banking:C90000007", "crm:003TESTLOOK008")] == "pending"
    review.record_decisions(spark, cfg, run, [junior], accept=True, decided_by="bob")
    report = service.run_resolution(spark, cfg, pipeline.new_run(cfg, service.JOB, day2, "test__day2"))
    after = _ids(spark, cfg)
    assert report.mode == "incremental" and 0 < report.comparisons
    decided = {"core_banking:C90000002", "crm:003TESTTYPO002", "core_banking:C90000007", "crm:003TESTEMPTY01",
               "core_banking:C90000008", "crm:003TESTLOOK008"}
    # Lucy's two customers merge: one of her records necessarily takes the survivor's id.
    lucy = {"core_banking:C90000011", "cards:CC90000011"}
    changed = {r for r in set(before) - decided - lucy if after[r] != before[r]}
    assert changed == set()
    assert {after[r] for r in lucy} < {before[r] for r in lucy}
    assert after["digital:d0000000-test-4000-8000-000000000006"] == before["core_banking:C90000006"]
    assert after["core_banking:C90000011"] == after["cards:CC90000011"] == after["crm:003TESTBRIDGE1"]
    assert after["core_banking:C90000002"] != after["crm:003TESTTYPO002"]
    assert after["core_banking:C90000007"] == after["crm:003TESTEMPTY01"] != after["crm:003TESTLOOK008"]
    assert after["core_banking:C90000008"] == after["crm:003TESTLOOK008"]
    rules = {f"{r.source_system}:{r.source_record_id}": r.match_rule for r in io.read(spark, cfg, "silver.customer_xref")
             .filter(F.col("resolved_run_id") == "test__day2").collect()}
    assert rules["crm:003TESTLOOK008"] == "review:accepted" and rules["crm:003TESTEMPTY01"] == "override:match"
    events = io.read(spark, cfg, "silver.identity_events").filter(F.col("run_id") == "test__day2").collect()
    lucy_ids = {before["core_banking:C90000011"], before["cards:CC90000011"]}
    lucy_merges = [e for e in events if e.event_type == "merge" and e.new_customer_id in lucy_ids]
    assert lucy_merges, ([e.asDict() for e in events], lucy_ids, {r: after[r] for r in lucy | {"crm:003TESTBRIDGE1"}})
    merged = lucy_merges[0]
    assert set(merged.old_customer_ids) == lucy_ids
    assert merged.retired_customer_ids == sorted(lucy_ids - {merged.new_customer_id})
    merges = {frozenset(e.old_customer_ids) for e in events if e.event_type == "merge"}
    assert frozenset({before["core_banking:C90000007"], before["crm:003TESTEMPTY01"]}) in merges
    assert frozenset({before["core_banking:C90000008"], before["crm:003TESTLOOK008"]}) in merges
    split = next(e for e in events if e.event_type == "split")
    assert split.old_customer_ids == [before["core_banking:C90000002"]]
    assert split.new_customer_id == after["crm:003TESTTYPO002"]
    golden = io.read(spark, cfg, "silver.golden_customers")
    retired = golden.filter(F.col("customer_id") == merged.retired_customer_ids[0]).collect()
    assert [r.is_current for r in retired] == [False] and retired[0].valid_to == dt.datetime(2026, 10, 2)


# ---- unit tests on tiny frames -------------------------------------------------------------

def test_split_conflicts_keeps_strongest_edges():
    edges = [("a", "b", 3.0), ("b", "c", 0.95), ("c", "d", 3.0), ("a", "d", 0.91)]
    keys = clustering.split_conflicts(["a", "b", "c", "d"], edges, never=[("a", "c")])
    assert keys["a"] == keys["b"] and keys["c"] == keys["d"] and keys["a"] != keys["c"]


def test_assign_ids_and_events_on_merge_and_split(spark):
    previous = spark.createDataFrame([("r1", "CUSA"), ("r2", "CUSA"), ("r3", "CUSB"), ("r4", "CUSC"), ("r5", "CUSC"),
                                      ("r6", "CUSC")], "unique_id string, customer_id string")
    # r1-r3 merge (A keeps: two records), C splits into {r4, r5} (keeps C) and {r6} (new id); r7 is new.
    clusters = spark.createDataFrame([("r1", "k1"), ("r2", "k1"), ("r3", "k1"), ("r4", "k4"), ("r5", "k4"),
                                      ("r6", "k6"), ("r7", "k7")], "unique_id string, cluster_key string")
    assignment = stable_ids.assign_customer_ids(clusters, previous, START)
    ids = {r.cluster_key: (r.customer_id, r.is_new) for r in assignment.collect()}
    assert ids["k1"] == ("CUSA", False) and ids["k4"] == ("CUSC", False)
    assert ids["k6"][1] and ids["k7"][1] and ids["k6"][0] != ids["k7"][0] and ids["k6"][0].startswith("CUS")
    run = RunContext("t", "r", START, "sha", "test", dt.datetime(2026, 10, 1, 6))
    events = {r.event_type: r for r in stable_ids.build_identity_events(clusters, previous, assignment, run).collect()}
    assert events["merge"].old_customer_ids == ["CUSA", "CUSB"] and events["merge"].retired_customer_ids == ["CUSB"]
    assert events["split"].old_customer_ids == ["CUSC"] and events["split"].new_customer_id == ids["k6"][0]
    assert set(events) == {"merge", "split"}


def test_accuracy_metrics(spark):
    assignment = spark.createDataFrame([("a", "X"), ("b", "X"), ("c", "X"), ("d", "Y")], "unique_id string, customer_id string")
    truth = spark.createDataFrame([("a", "P"), ("b", "P"), ("c", "Q"), ("d", "Q")], "unique_id string, person_id string")
    m = evaluation.accuracy(assignment, truth)
    assert (m["predicted_pairs"], m["true_pairs"], m["correct_pairs"]) == (3, 2, 1)
    assert m["pairwise_precision"] == pytest.approx(1 / 3) and m["pairwise_recall"] == pytest.approx(0.5)
    assert m["bcubed_precision"] == pytest.approx((2 / 3 * 2 + 1 / 3 + 1) / 4)


def test_survivorship_and_scd2_versions(spark, cfg):
    conf = load_identity_conf(cfg).survivorship
    rows = [
        ("core_banking", "1", "Mr", "William", None, "Smith", dt.date(1980, 1, 2), "old@x.com", "+441", "1 A St", "Leeds", "LS1 1AA", "GB", "N1", dt.date(2010, 1, 1), dt.datetime(2020, 1, 1)),
        ("cards", "2", None, "Bill", "J", "Smith", dt.date(1980, 1, 2), "new@x.com", "+441", "9 B Rd", "York", "YO1 1AA", None, None, dt.date(2005, 1, 1), dt.datetime(2024, 1, 1)),
        ("crm", "3", None, "Bill", None, "Smith", None, "new@x.com", None, None, None, None, None, None, None, dt.datetime(2023, 1, 1)),
    ]
    cols = ("source_system source_record_id title first_name middle_name last_name date_of_birth email phone_e164 "
            "address_line1 city postcode country national_id customer_since source_updated_at").split()
    records = spark.createDataFrame(rows, cols).withColumn("is_current", F.lit(True))
    xref = records.select("source_system", "source_record_id", F.lit("CUS1").alias("customer_id"))
    golden = survivorship.build_golden_attributes(records, xref, conf).first()
    assert (golden.first_name, golden.middle_name, golden.email) == ("William", "J", "new@x.com")
    assert (golden.address_line1, golden.customer_since) == ("9 B Rd", dt.date(2005, 1, 1))
    assert golden.attribute_sources["name"] == "core_banking" and golden.attribute_sources["email"] == "cards"
    first = survivorship.build_golden_versions(survivorship.build_golden_attributes(records, xref, conf),
                                               _empty_golden(spark), dt.datetime(2026, 10, 1))
    current = first.collect()
    assert len(current) == 1 and current[0].is_current
    moved = records.withColumn("city", F.when(F.col("source_system") == "cards", "Hull").otherwise(F.col("city")))
    second = survivorship.build_golden_versions(survivorship.build_golden_attributes(moved, xref, conf), first,
                                                dt.datetime(2026, 10, 2)).collect()
    assert sorted((r.is_current, r.city, r.valid_to) for r in second) == [
        (False, "York", dt.datetime(2026, 10, 2)), (True, "Hull", None)]


def _empty_golden(spark):
    schema = ("customer_id string, " + ", ".join(
        f"{c} {'date' if c in ('date_of_birth', 'customer_since') else 'string'}" for c in survivorship.GOLDEN_COLUMNS)
        + ", attribute_sources map<string,string>, valid_from timestamp, valid_to timestamp, is_current boolean, "
          "record_hash string")
    return spark.createDataFrame([], schema)


def test_cli_registers_resolve_and_identity_commands():
    import argparse

    from c360.identity import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["resolve", "--date", "2026-10-02", "--full-relink", "--backend", "spark"])
    assert (args.func, args.date, args.full_relink, args.backend) == (cli.cmd_resolve, dt.date(2026, 10, 2), True, "spark")
    args = parser.parse_args(["identity", "explain", "cards:CC1", "--chart", "waterfall.html"])
    assert (args.func, args.record, args.chart) == (cli.cmd_explain, "cards:CC1", "waterfall.html")
    args = parser.parse_args(["identity", "review", "accept", "crm:1", "cards:2", "--by", "ann"])
    assert (args.func, args.action, args.records, args.by) == (cli.cmd_review, "accept", ["crm:1", "cards:2"], "ann")
    args = parser.parse_args(["identity", "evaluate", "--blocking", "--save", "demo"])
    assert (args.func, args.blocking, args.save) == (cli.cmd_evaluate, True, "demo")


def test_library_does_not_import_the_identity_job():
    """c360 (its CLIs, the demo, the identity service) never imports jobs.resolve_identity: the job is a thin
    spark-submit entry over c360.identity.service, and a run carries no evaluation against the truth."""
    import subprocess
    import sys

    code = ("import sys, c360.cli, c360.demo, c360.identity.cli, c360.identity.service as s; "
            "assert 'jobs.resolve_identity' not in sys.modules, 'c360 imports jobs.resolve_identity'; "
            "assert 'accuracy' not in s.ResolutionReport.__dataclass_fields__")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
