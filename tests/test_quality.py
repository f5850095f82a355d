"""Quality runner: every suite loads, builds and analyses; real GX runs on tiny frames gate as designed."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import types as T

from c360 import io, quality
from c360.catalog import BRONZE_METADATA, LAYERS, load_catalog
from c360.config import load_config

SUITE_FILES = sorted(quality.EXPECTATIONS_DIR.glob("*.yaml"))
CATALOG = load_catalog(load_config())
_REFERENCE = re.compile(rf"\b(?:{'|'.join(LAYERS)})\.[a-z_][a-z0-9_]*\b")
_EMAIL = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"

ACCOUNTS = T.StructType([
    T.StructField("source_system", T.StringType()),
    T.StructField("account_id", T.StringType()),
    T.StructField("source_customer_id", T.StringType()),
    T.StructField("product_type", T.StringType()),
    T.StructField("credit_limit", T.DecimalType(18, 2)),
    T.StructField("opened_date", T.DateType()),
    T.StructField("email", T.StringType()),
])
GOOD_ROWS = [
    ("core_banking", "A1", "C1", "current", None, dt.date(2020, 1, 5), "ann.lee@example.com"),
    # Same account number in another system: the compound key is still unique.
    ("cards", "A1", "C2", "credit_card", Decimal("500.00"), dt.date(2021, 3, 1), "bob@example.co.uk"),
    # Null row: every optional column empty.
    ("core_banking", "A2", "C1", "savings", None, None, None),
    # Malformed row: an e-mail that is no e-mail, which the suite only warns about.
    ("cards", "A3", "C2", "credit_card", Decimal("0.00"), dt.date(2022, 7, 9), "NOT AN EMAIL"),
]
TEST_SUITE = f"""
table: test.accounts
description: an accounts-like table for the runner's own tests
pii: [email]
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {{column: account_id}}
    severity: critical
    description: key present
  - type: expect_compound_columns_to_be_unique
    kwargs: {{column_list: [source_system, account_id]}}
    severity: critical
  - type: expect_column_values_to_be_in_set
    kwargs: {{column: product_type, value_set: [current, savings, credit_card]}}
    severity: critical
  - {{type: expect_column_values_to_be_between, kwargs: {{column: credit_limit, min_value: 0}}, severity: critical}}
  - {{type: expect_column_values_to_match_regex, kwargs: {{column: email, regex: '{_EMAIL}'}}, severity: warning}}
  - type: expect_table_row_count_to_be_between
    kwargs: {{min_value: {{$PARAMETER: min_row_count}}}}
    severity: critical
  - type: unexpected_rows_expectation
    severity: warning
    description: every account belongs to a known customer
    kwargs:
      unexpected_rows_query: >-
        SELECT b.account_id FROM {{batch}} b
        WHERE NOT EXISTS (SELECT 1 FROM ref_customers c WHERE c.customer_id = b.source_customer_id)
"""
CATALOG_SUITE = """
table: test.catalog_refs
expectations:
  - type: unexpected_rows_expectation
    severity: warning
    description: every account belongs to a customer of the catalog table
    kwargs:
      unexpected_rows_query: >-
        SELECT b.account_id FROM {batch} b
        WHERE NOT EXISTS (SELECT 1 FROM silver.gx_test_customers c WHERE c.customer_id = b.source_customer_id)
  - type: unexpected_rows_expectation
    severity: critical
    description: a table that is not there yet
    kwargs:
      unexpected_rows_query: "SELECT * FROM {batch} b JOIN silver.gx_test_absent a ON a.account_id = b.account_id"
"""


@pytest.fixture(scope="module")
def suites_dir(tmp_path_factory) -> Path:
    """A folder holding the runner tests' own suites."""
    folder = tmp_path_factory.mktemp("expectations")
    (folder / "test.accounts.yaml").write_text(TEST_SUITE)
    (folder / "test.catalog_refs.yaml").write_text(CATALOG_SUITE)
    return folder


@pytest.fixture(scope="module")
def run(spark, suites_dir, tmp_path_factory):
    """validate() on rows shaped like ACCOUNTS, against the test suites, with a known-customers view."""
    spark.createDataFrame([("C1",), ("C2",)], "customer_id string").createOrReplaceTempView("ref_customers")
    root = tmp_path_factory.mktemp("quality")

    def _run(rows, table="test.accounts", min_row_count=0, build_docs=False):
        df = spark.createDataFrame(rows, ACCOUNTS)
        return quality.validate(df, table, quality_root=root, expectations_dir=suites_dir, run_id="test-run",
                                parameters={"min_row_count": min_row_count}, build_docs=build_docs)

    _run.root = root
    return _run


# ---- suites as data --------------------------------------------------------------------------


def test_every_catalog_table_has_a_suite():
    assert {p.stem for p in SUITE_FILES} == set(CATALOG.tables)


def _referenced_columns(kwargs: dict) -> set[str]:
    return set(kwargs.get("column_list") or []) | {kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs}


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_loads_and_builds_a_gx_suite(path):
    suite = quality.load_suite(path.stem, path.parent)
    gx_suite = quality.build_suite(suite)
    table = CATALOG.table(path.stem)
    assert len(gx_suite.expectations) == len(suite["expectations"])
    for entry in suite["expectations"]:
        assert _referenced_columns(entry["kwargs"]) <= set(table.columns), entry
    assert set(suite["pii"]) <= set(table.columns)
    if table.layer == "silver":
        assert set(suite["pii"]) == set(table.pii)
    row_count = [e for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between"]
    assert row_count and row_count[0]["kwargs"]["min_value"] == {"$PARAMETER": "min_row_count"}


@pytest.mark.parametrize("feed", sorted(CATALOG.feeds))
def test_bronze_suite_covers_the_landing_contract(feed):
    spec = CATALOG.feeds[feed]
    entries = quality.load_suite(spec.bronze_table)["expectations"]
    not_null = {e["kwargs"]["column"] for e in entries if e["type"] == "expect_column_values_to_not_be_null"}
    unique = [e["kwargs"]["column_list"] for e in entries if e["type"] == "expect_compound_columns_to_be_unique"]
    queries = " ".join(e["kwargs"].get("unexpected_rows_query", "") for e in entries)
    assert {c.name for c in spec.columns if c.required} | set(BRONZE_METADATA) <= not_null
    assert ["_source_file", "_record_no"] in unique and ["_source_file", *spec.key] in unique
    assert all(f"upper(TRIM({c.name}))" in queries for c in spec.columns if c.allowed)


@pytest.fixture(scope="module")
def empty_tables(spark):
    """An empty temp view per catalog table, named qa_<layer>_<name>, with the catalog schema."""
    views = {}
    for name, spec in CATALOG.tables.items():
        view = "qa_" + name.replace(".", "_")
        spark.createDataFrame([], io.schema_of(spec)).createOrReplaceTempView(view)
        views[name] = view
    yield views
    for view in views.values():
        spark.catalog.dropTempView(view)


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_queries_analyse_against_the_catalog_schemas(path, spark, empty_tables):
    for entry in quality.load_suite(path.stem, path.parent)["expectations"]:
        query = entry["kwargs"].get("unexpected_rows_query")
        if query is None:
            continue
        # The same substitution GX makes, with catalog names pointed at empty twins. spark.sql
        # analyses eagerly, so an unknown column, table or function raises here.
        analysed = spark.sql(_REFERENCE.sub(lambda m: empty_tables[m.group(0)], query.format(batch=empty_tables[path.stem])))
        assert analysed.columns, f"{path.name}: query selects no columns"


_NOT_NULL = "type: expect_column_values_to_not_be_null, kwargs: {%s: a}, severity: %s"


@pytest.mark.parametrize("text, message", [
    ("expectations:\n  - {type: expect_column_to_be_lovely, kwargs: {column: a}, severity: critical}",
     "expectations[0]: unknown expectation type 'expect_column_to_be_lovely'"),
    ("expectations:\n  - {%s}" % (_NOT_NULL % ("colum", "critical")),
     "expectations[0] (expect_column_values_to_not_be_null): column: field required; "
     "colum: extra fields not permitted"),
    ("expectations:\n  - {%s}" % (_NOT_NULL % ("column", "fatal")), "severity must be one of"),
    ("expectations:\n  - {%s, mostly: 0.9}" % (_NOT_NULL % ("column", "critical")), "unknown keys ['mostly']"),
    ("expectations: []", "'expectations' must be a non-empty list"),
    ("expectations: [", "not valid YAML"),
])
def test_malformed_suite_names_the_file_and_the_entry(tmp_path, text, message):
    (tmp_path / "test.bad.yaml").write_text(f"table: test.bad\n{text}\n")
    with pytest.raises(quality.SuiteError) as error:
        quality.build_suite(quality.load_suite("test.bad", tmp_path))
    assert str(tmp_path / "test.bad.yaml") in str(error.value)
    assert message in str(error.value)


def test_missing_or_misnamed_suite_is_a_clear_error(tmp_path):
    with pytest.raises(quality.SuiteError, match="no quality suite for table 'silver.nothing'"):
        quality.load_suite("silver.nothing", tmp_path)
    (tmp_path / "silver.nothing.yaml").write_text("table: silver.something\nexpectations: []\n")
    with pytest.raises(quality.SuiteError, match="'table' is 'silver.something', expected 'silver.nothing'"):
        quality.load_suite("silver.nothing", tmp_path)


# ---- real GX runs ----------------------------------------------------------------------------


def test_passing_frame_passes_and_builds_data_docs(run):
    result = run(GOOD_ROWS, build_docs=True)
    assert result.success and not result.critical_failures
    assert result.evaluated == 7
    # The malformed e-mail only warns, and its value stays out of the log (PII column).
    assert len(result.warnings) == 1
    assert "expect_column_values_to_match_regex [email]: 1 unexpected of 3 non-null values" in result.warnings[0]
    assert "NOT AN EMAIL" not in result.summary and "masked" in result.summary
    quality.gate(result)
    assert Path(result.data_docs_index).is_file()


def test_critical_failures_fail_the_gate_with_a_readable_summary(run):
    bad_rows = [
        ("cards", "A1", "C2", "credit_card", None, None, None),  # duplicate key
        ("cards", None, "C2", "credit_card", None, None, None),  # null key
        ("core_banking", "A8", "C1", "checking", None, None, None),  # outside the value set
        ("cards", "A9", "C1", "credit_card", Decimal("-1.00"), None, None),  # below the range
    ]
    result = run(GOOD_ROWS + bad_rows)
    assert not result.success
    assert result.critical_failures == [
        "expect_column_values_to_not_be_null [account_id] 'key present': 1 unexpected of 8 rows (12.50%)",
        "expect_compound_columns_to_be_unique [source_system, account_id]: 2 unexpected of 8 rows (25.00%); "
        "e.g. ('cards', 'A1') x2",
        "expect_column_values_to_be_in_set [product_type]: 1 unexpected of 8 rows (12.50%); e.g. 'checking' x1",
        "expect_column_values_to_be_between [credit_limit]: 1 unexpected of 3 non-null values (33.33%); "
        "e.g. Decimal('-1.00') x1",
    ]
    assert result.summary.startswith("quality test.accounts (run test-run): FAILED: 7 expectations on 8 rows")
    assert "  CRITICAL expect_column_values_to_be_in_set [product_type]" in result.summary
    with pytest.raises(quality.QualityGateError) as error:
        quality.gate(result)
    assert str(error.value) == result.summary and error.value.result is result


def test_warning_only_failure_does_not_fail_the_gate(run):
    orphan = ("core_banking", "A7", "C404", "current", None, None, "carol@example.org")
    result = run(GOOD_ROWS + [orphan])
    assert result.success
    assert any("'every account belongs to a known customer': 1 unexpected rows" in w for w in result.warnings)
    quality.gate(result)


def test_min_row_count_parameter_gates_a_shrinking_table(run):
    result = run(GOOD_ROWS, min_row_count=5)
    assert not result.success
    assert result.critical_failures == [
        "expect_table_row_count_to_be_between [table]: observed 4, expected min_value=5"]
    assert run(GOOD_ROWS, min_row_count=4).success


def test_missing_parameter_is_a_clear_error(spark, suites_dir, tmp_path):
    df = spark.createDataFrame(GOOD_ROWS, ACCOUNTS)
    with pytest.raises(quality.SuiteError, match=r"parameters \['min_row_count'\] must be passed"):
        quality.validate(df, "test.accounts", quality_root=tmp_path, expectations_dir=suites_dir, run_id="r")


def test_catalog_tables_by_dotted_name_and_missing_tables(spark, run):
    spark.sql("CREATE DATABASE IF NOT EXISTS silver")
    customers = spark.createDataFrame([("C1",)], "customer_id string")
    customers.write.format("parquet").mode("overwrite").saveAsTable("silver.gx_test_customers")
    try:
        result = run(GOOD_ROWS, table="test.catalog_refs")
    finally:
        spark.sql("DROP TABLE IF EXISTS silver.gx_test_customers")
    # The query on silver.gx_test_customers ran: the two accounts of customer C2 are orphans there.
    assert result.warnings == ["unexpected_rows_expectation [table] 'every account belongs to a customer of "
                               "the catalog table': 2 unexpected rows"]
    assert result.critical_failures == ["unexpected_rows_expectation [table] 'a table that is not there yet': "
                                        "references silver.gx_test_absent, which the session catalog does not hold"]
    assert result.evaluated == 2


def test_deferred_data_docs_are_built_once(run):
    run(GOOD_ROWS)
    index = quality.build_data_docs(run.root)
    assert Path(index).is_file()
    assert list((run.root / "data_docs" / "validations").rglob("*.html"))


def test_a_real_silver_suite_passes_on_valid_rows(spark, tmp_path):
    schema = io.schema_of(CATALOG.table("silver.accounts"))
    row = ("core_banking", "100001", "C1", "current", "GBP", dt.date(2020, 1, 5), None, "active", None, None,
           dt.datetime(2026, 10, 1, 9, 30), "a" * 64)
    result = quality.validate(spark.createDataFrame([row], schema), "silver.accounts", quality_root=tmp_path,
                              run_id="test-run", parameters={"min_row_count": 1}, build_docs=False)
    assert result.success, result.summary


def test_a_passed_version_is_not_validated_again_until_it_or_a_table_its_suite_reads_changes(spark, tmp_path):
    from c360 import pipeline
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    run = pipeline.new_run(cfg, "test_quality", dt.date(2026, 10, 1), "test__ledger")
    records = io.schema_of(CATALOG.table("silver.customer_records"))
    customer = {f.name: None for f in records} | {"source_system": "core_banking", "source_record_id": "C1",
                                                   "is_current": True}
    io.append(spark, cfg, "silver.customer_records", spark.createDataFrame([customer], records), run)
    account = ("core_banking", "100001", "C1", "current", "GBP", dt.date(2020, 1, 5), None, "active", None, None,
               dt.datetime(2026, 10, 1, 9, 30), "a" * 64)
    accounts = spark.createDataFrame([account], io.schema_of(CATALOG.table("silver.accounts")))
    io.append(spark, cfg, "silver.accounts", accounts, run)

    def check():
        return pipeline.audit(spark, cfg, "silver.accounts", None, run, reuse_passed=True)

    first = check()
    assert first.success and "not run again" not in first.summary
    again = check()
    assert again.success and "not run again" in again.summary and again.evaluated == first.evaluated
    # A table the suite's queries read changed: its verdict may change, so it runs again.
    io.append(spark, cfg, "silver.customer_records",
              spark.createDataFrame([customer | {"source_record_id": "C2"}], records), run)
    assert "not run again" not in check().summary
    # The table itself changed, and badly: GX runs and fails, and a failure is never reused.
    io.append(spark, cfg, "silver.accounts", accounts, run)
    for _ in range(2):
        failed = check()
        assert not failed.success and "one row per account" in failed.summary


PII_SUITE = r"""
table: silver.accounts
description: the catalog declares card_number_hash PII; this suite adds email
pii: [email]
expectations:
  - type: expect_column_values_to_match_regex
    kwargs: {column: email, regex: '^[a-z0-9.]+@example\.com$'}
    severity: critical
  - type: expect_column_values_to_match_regex
    kwargs: {column: card_number_hash, regex: '^[0-9a-f]{64}$'}
    severity: critical
  - type: expect_column_values_to_be_in_set
    kwargs: {column: product_type, value_set: [current, savings]}
    severity: critical
  - {type: expect_compound_columns_to_be_unique, kwargs: {column_list: [account_id, email]}, severity: critical}
  - type: unexpected_rows_expectation
    severity: warning
    kwargs: {unexpected_rows_query: "SELECT * FROM {batch} WHERE product_type NOT IN ('current', 'savings')"}
"""


def test_pii_values_never_reach_stored_results_or_data_docs(spark, tmp_path):
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "silver.accounts.yaml").write_text(PII_SUITE)
    schema = "source_system string, account_id string, product_type string, email string, card_number_hash string"
    rows = [
        ("core_banking", "A1", "current", "ann@example.com", "a" * 64),
        ("cards", "A2", "savings", "zq.unique.4711@nowhere.test", "b" * 64),  # e-mail (suite PII) fails
        ("cards", "A3", "current", "bob@example.com", "HASH-UNIQUE-8812"),  # hash (catalog PII) fails
        ("cards", "A4", "zz_product_42", "carol@example.com", "c" * 64),  # non-PII value fails
        ("cards", "ACC-VISIBLE-77", "current", "dup.unique.5150@example.com", "d" * 64),
        ("cards", "ACC-VISIBLE-77", "current", "dup.unique.5150@example.com", "d" * 64),  # duplicate pair
        ("cards", "A6", None, None, None),
    ]
    root = tmp_path / "quality"
    result = quality.validate(spark.createDataFrame(rows, schema), "silver.accounts", quality_root=root,
                              expectations_dir=suites, run_id="pii-run", parameters={}, build_docs=True)
    quality.build_data_docs(root, full=True)
    assert len(result.critical_failures) == 4
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert any(p.suffix == ".html" and "validations" in p.parts for p in files)
    for secret in (b"zq.unique.4711", b"HASH-UNIQUE-8812", b"dup.unique.5150"):
        leaks = [str(p) for p, data in files.items() if secret in data]
        assert not leaks, (secret, leaks)
    stored = [data for p, data in files.items() if p.suffix == ".json" and "validations" in p.parts]
    # The non-PII columns' unexpected values stay, in the stored result and its Data Docs page.
    assert any(b"zz_product_42" in data and b"ACC-VISIBLE-77" in data and b'"***"' in data for data in stored)
    assert any(b"zz_product_42" in data for p, data in files.items() if p.suffix == ".html")
    assert not any(s in result.summary for s in ("zq.unique.4711", "HASH-UNIQUE-8812", "dup.unique.5150"))


def test_unexpected_rows_keep_only_their_non_pii_columns():
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from pyspark.sql import Row

    rows = ExpectationValidationResult(
        success=False, expectation_config=ExpectationConfiguration(
            type="unexpected_rows_expectation", kwargs={"unexpected_rows_query": "SELECT * FROM {batch}"}),
        result={"observed_value": 2, "details": {"unexpected_rows": [
            Row(account_id="A1", email="zq@x.test"), {"account_id": "A2", "email": None}, ("A3", "raw@x.test")]}})
    validation = ExpectationSuiteValidationResult(success=False, results=[rows], suite_name="t")
    quality.mask_pii(validation, frozenset({"email"}))
    # Named PII fields are masked, named others kept, and a row without column names is masked whole.
    assert validation.results[0].result == {"observed_value": 2, "details": {"unexpected_rows": [
        {"account_id": "A1", "email": quality.MASK}, {"account_id": "A2", "email": None},
        [quality.MASK, quality.MASK]]}}


def test_results_stored_before_a_column_became_pii_are_masked_again(spark, tmp_path):
    suites = tmp_path / "expectations"
    suites.mkdir()
    suite = """
table: test.late_pii
pii: {pii}
expectations:
  - {{type: expect_column_values_to_match_regex, kwargs: {{column: nickname, regex: '^[a-z]+$'}}, severity: critical}}
"""
    (suites / "test.late_pii.yaml").write_text(suite.format(pii="[]"))
    root = tmp_path / "quality"
    df = spark.createDataFrame([("ann",), ("Late-PII-3141",), (None,)], "nickname string")
    quality.validate(df, "test.late_pii", quality_root=root, expectations_dir=suites, run_id="before",
                     parameters={}, build_docs=True)
    assert any(b"Late-PII-3141" in p.read_bytes() for p in root.rglob("*") if p.is_file())
    (suites / "test.late_pii.yaml").write_text(suite.format(pii="[nickname]"))
    # The gate's BOOLEAN_ONLY result holds no values: only the evidence run's result changes.
    assert quality.mask_stored_results(root, suites) == 1
    quality.build_data_docs(root, full=True)
    assert not [str(p) for p in root.rglob("*") if p.is_file() and b"Late-PII-3141" in p.read_bytes()]
    assert quality.mask_stored_results(root, suites) == 0
