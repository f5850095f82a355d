"""Quality gate: run a table's GX Core suite (expectations/<table>.yaml) on a Spark DataFrame.

A suite file is data, one per table:

    table: silver.accounts
    description: what the table holds
    pii: [card_number_hash]          # sample values of these columns never reach the logs
    expectations:
      - type: expect_column_values_to_be_in_set     # any GX expectation type
        kwargs: {column: status, value_set: [active, closed]}
        severity: critical           # critical fails the gate; warning is only reported
        description: why the rule holds

Row-count sanity uses {$PARAMETER: min_row_count}, passed to validate() as a parameter.
unexpected_rows_expectation queries name the validated frame {batch} and other tables by
catalog name (silver.customer_records); GX fills {batch} with str.format, so a literal brace
is written twice ({{ }}). A query naming a table the session catalog does not hold is not run
and counts as a failed check of its own severity.

Results and HTML Data Docs stay on disk in a file-backed GX context under the quality root:
quality_root/gx (suites, validation definitions, validation results) and quality_root/data_docs.
Values of PII columns never reach that disk: a result's unexpected-value samples, observed values
and unexpected rows of the suite's `pii:` columns and of the catalog's (conf/tables.yaml `pii:`,
conf/sources.yaml `pii: true`) are replaced by "***" before GX stores it, and Data Docs are
rendered from the stored result.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from c360.catalog import LAYERS, load_catalog
from c360.config import CONF_DIR, load_config
from c360.errors import QualityGateError

log = logging.getLogger(__name__)
# GX logs every metric it resolves (and some 200 lines on import) at INFO; keep task logs
# readable unless the application chose a level for it.
if logging.getLogger("great_expectations").level == logging.NOTSET:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
SEVERITIES = ("critical", "warning")
DOCS_SITE = "c360_quality"
DATA_SOURCE = "c360_spark"
# Unexpected values kept per failed expectation, in results and in failure lines.
SAMPLE_COUNT = 5
# The Data Docs index lists the newest results only: building it reads every listed result.
DOCS_INDEX_LIMIT = 500
# What a stored result and Data Docs show in place of a PII column's value.
MASK = "***"

_ENTRY_KEYS = {"type", "kwargs", "severity", "description", "meta"}
_SUITE_KEYS = {"table", "description", "pii", "expectations"}
_TABLE_REFERENCE = re.compile(rf"\b(?:{'|'.join(LAYERS)})\.[A-Za-z_][A-Za-z0-9_]*\b")
# A gate first asks GX only whether each expectation holds (no unexpected-value samples, so
# about a third fewer Spark jobs); a suite that fails is run again in full for the evidence.
_GATE_FORMAT = {"result_format": "BOOLEAN_ONLY"}
_EVIDENCE_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_COUNT}
# Result keys that can carry the data's own values (the rest are counts and percentages).
_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_index_list", "unexpected_list", "unexpected_index_list",
               "unexpected_index_query", "observed_value", "details")


class SuiteError(ValueError):
    """A suite file is missing or malformed, names an unknown expectation, or lacks a parameter."""


@dataclass(frozen=True)
class QualityResult:
    """Outcome of one suite run on one table's DataFrame."""

    table: str
    success: bool
    evaluated: int
    critical_failures: list[str]
    warnings: list[str]
    summary: str
    data_docs_index: str | None


# ---- suites as data ----------------------------------------------------------------------


def suite_path(table: str, expectations_dir: Path = EXPECTATIONS_DIR) -> Path:
    """Path of the suite file of `table` (expectations/silver.accounts.yaml)."""
    return Path(expectations_dir) / f"{table}.yaml"


def _check_entry(entry: Any, where: str) -> dict:
    """One suite entry, checked for shape, type and severity, with defaults filled in."""
    from great_expectations.expectations.registry import get_expectation_impl

    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise SuiteError(f"{where}: an entry must be a mapping with a string 'type', got {entry!r}")
    label = f"{where} ({entry['type']})"
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise SuiteError(f"{label}: unknown keys {sorted(unknown)}; allowed {sorted(_ENTRY_KEYS)}")
    try:
        get_expectation_impl(entry["type"])
    except Exception:
        raise SuiteError(f"{where}: unknown expectation type '{entry['type']}'") from None
    if entry.get("severity") not in SEVERITIES:
        raise SuiteError(f"{label}: severity must be one of {SEVERITIES}, got {entry.get('severity')!r}")
    if not isinstance(entry.get("kwargs", {}), dict):
        raise SuiteError(f"{label}: kwargs must be a mapping")
    return {"kwargs": {}, "description": None, "meta": {}, **entry}


def load_suite(table: str, expectations_dir: Path = EXPECTATIONS_DIR) -> dict:
    """Read and check the suite file of `table`: {table, description, pii, expectations, path}."""
    path = suite_path(table, expectations_dir)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"no quality suite for table '{table}': {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - _SUITE_KEYS:
        raise SuiteError(f"{path}: a suite is a mapping with keys {sorted(_SUITE_KEYS)}")
    if doc.get("table") != table:
        raise SuiteError(f"{path}: 'table' is {doc.get('table')!r}, expected '{table}'")
    entries = doc.get("expectations")
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    checked = [_check_entry(e, f"{path}: expectations[{i}]") for i, e in enumerate(entries)]
    return {"table": table, "description": doc.get("description", ""), "pii": list(doc.get("pii") or []),
            "expectations": checked, "path": str(path)}


def build_suite(suite: dict, skip: frozenset[int] = frozenset()):
    """The GX ExpectationSuite of a loaded suite (minus entries `skip`); a bad kwarg names the entry."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    expectations = []
    for i, entry in enumerate(suite["expectations"]):
        if i in skip:
            continue
        impl = get_expectation_impl(entry["type"])
        try:
            # The description goes to meta and notes, not to GX's own description field: Data Docs
            # would show it in place of the rule itself.
            meta = {**entry["meta"], "severity": entry["severity"], "description": entry["description"]}
            expectations.append(impl(**entry["kwargs"], severity=entry["severity"], notes=entry["description"],
                                     meta=meta))
        except Exception as exc:
            errors = exc.errors() if callable(getattr(exc, "errors", None)) else []
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(exc)
            raise SuiteError(f"{suite['path']}: expectations[{i}] ({entry['type']}): {reason}") from None
    # Passed to the constructor: add_expectation() would need an active GX context.
    return gx.ExpectationSuite(name=suite["table"], expectations=expectations, meta={"source": suite["path"]})


def _parameter_names(value: Any) -> set[str]:
    """Names of the {"$PARAMETER": name} placeholders anywhere inside `value`."""
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            return {str(value["$PARAMETER"])}
        return set().union(*(_parameter_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_parameter_names(v) for v in value))
    return set()


def referenced_tables(suite: dict) -> list[str]:
    """Catalog tables that the suite's queries read besides the validated frame."""
    queries = [e["kwargs"].get("unexpected_rows_query") for e in suite["expectations"]]
    return sorted({t for q in queries if isinstance(q, str) for t in _TABLE_REFERENCE.findall(q)} - {suite["table"]})


def _missing_tables(spark, suite: dict) -> dict[int, list[str]]:
    """Per entry index, the catalog tables its SQL names that the session catalog does not hold."""
    missing: dict[int, list[str]] = {}
    for i, entry in enumerate(suite["expectations"]):
        query = entry["kwargs"].get("unexpected_rows_query")
        if not isinstance(query, str):
            continue
        absent = sorted({t for t in _TABLE_REFERENCE.findall(query) if not spark.catalog.tableExists(t)})
        if absent:
            missing[i] = absent
    return missing


# ---- the GX context ----------------------------------------------------------------------


def _docs_dir(quality_root: Path) -> Path:
    return quality_root / "data_docs"


@functools.lru_cache(maxsize=None)
def _context(quality_root: Path):
    """The file-backed GX context in quality_root/gx, opened once per process and root."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=quality_root)
    # GX 1.x has no telemetry left, but any version that brings it back honours this flag.
    context.variables.analytics_enabled = False
    # Progress bars would write carriage-return noise into task logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.data_docs_sites = {DOCS_SITE: {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(_docs_dir(quality_root))},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "validation_results_limit": DOCS_INDEX_LIMIT},
    }}
    context.variables.save()
    return context


def _definition(context, gx_suite):
    """Store the suite and (re)bind the table's Validation Definition to it."""
    import great_expectations as gx

    table = gx_suite.name
    try:
        source = context.data_sources.get(DATA_SOURCE)
    except KeyError:
        # persist=False: GX would otherwise cache every validated frame and never release it.
        # Added once, never add_or_update: that replaces the source and drops every table's asset.
        source = context.data_sources.add_spark(DATA_SOURCE, persist=False)
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(table)
    try:
        batch = asset.get_batch_definition("whole_dataframe")
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe("whole_dataframe")
    suite = context.suites.add_or_update(gx_suite)
    return context.validation_definitions.add_or_update(gx.ValidationDefinition(name=table, data=batch, suite=suite))


def _run_suite(df, suite: dict, quality_root: Path, run_id: str, parameters: dict, skip: frozenset[int],
               result_format: dict, pii: frozenset[str]):
    """Validate `df`, store the result with PII masked: (result, its key, suite entry index per expectation id)."""
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)
    from great_expectations.validator.v1_validator import Validator

    context = _context(quality_root)
    definition = _definition(context, build_suite(suite, skip))
    stored = context.suites.get(suite["table"]).expectations
    included = [i for i in range(len(suite["expectations"])) if i not in skip]
    entry_of = {expectation.id: i for expectation, i in zip(stored, included)}
    # An explicit run_time: without one GX parses a date-like run name as the run time.
    run = RunIdentifier(run_name=re.sub(r"[^\w.:+-]", "_", run_id), run_time=dt.datetime.now(dt.timezone.utc))
    # What ValidationDefinition.run does, except that it stores the raw result at once: here the
    # result is masked first, so raw PII values are never written, not even for a moment.
    validator = Validator(batch_definition=definition.batch_definition, batch_parameters={"dataframe": df},
                          result_format=result_format)
    validation = validator.validate_expectation_suite(definition.suite, parameters)
    validation.meta.update({"validation_id": definition.id, "checkpoint_id": None, "run_id": run,
                            "validation_time": run.run_time,
                            "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR}})
    mask_pii(validation, pii)
    key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite["table"]),
                                     run_id=run, batch_identifier=validation.batch_id)
    context.validation_results_store.set(key, validation)
    return validation, key, entry_of


# ---- PII ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _catalog_pii(conf_dir: str, table: str) -> tuple[str, ...]:
    """The catalog's PII columns of `table` (none for a table it does not list), once per conf folder."""
    tables = load_catalog(load_config(conf_dir=Path(conf_dir))).tables
    return tables[table].pii if table in tables else ()


def pii_columns(table: str, suite: dict, catalog_pii: Iterable[str] | None = None) -> frozenset[str]:
    """PII columns of `table`: the suite's `pii:` list and the catalog's (`catalog_pii`, else the conf folder's)."""
    if catalog_pii is None:
        catalog_pii = _catalog_pii(os.environ.get("C360_CONF_DIR", str(CONF_DIR)), table)
    # The union: a column is masked whichever of the two places declares it.
    return frozenset(suite["pii"]) | frozenset(catalog_pii)


def _masked(value: Any, pii: frozenset[str] | None, named: bool = False) -> Any:
    """`value` with PII hidden. With pii None: every non-null value. Else the values of mapping (or Spark Row)
    entries named in `pii`, and any value not named by a column at all, since its column cannot be told."""
    if value is None:
        return None
    if hasattr(value, "asDict"):
        value = value.asDict(recursive=True)
    if isinstance(value, dict):
        return {k: _masked(v, None) if pii is None or k in pii else _masked(v, pii, named=True)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, pii) for v in value]
    return value if pii is not None and named else MASK


def _pii_scope(kind: str, kwargs: dict, pii: frozenset[str]) -> tuple[tuple[str, ...], frozenset[str] | None] | None:
    """Which result keys of an expectation to mask, and how (see _masked); None when it touches no PII."""
    if kind == "unexpected_rows_expectation":
        # Rows from the query may hold any of the table's columns; its observed value is a count.
        return ("details",), pii
    if {kwargs.get(k) for k in ("column", "column_A", "column_B")} & pii:
        return _VALUE_KEYS, None
    if set(kwargs.get("column_list") or []) & pii:
        return _VALUE_KEYS, pii
    return None


def mask_pii(validation, pii: frozenset[str]) -> None:
    """Replace PII columns' values in a GX validation result (samples, observed values, rows) with MASK, in place."""
    if not pii:
        return
    for outcome in validation.results:
        scope = _pii_scope(outcome.expectation_config.type, outcome.expectation_config.kwargs or {}, pii)
        if scope is None or not outcome.result:
            continue
        keys, columns = scope
        for key in keys:
            if key in outcome.result:
                outcome.result[key] = _masked(outcome.result[key], columns)
        if "partial_unexpected_counts" in outcome.result and keys is _VALUE_KEYS:
            outcome.result["partial_unexpected_counts"] = [
                {**c, "value": _masked(c.get("value"), columns)} for c in outcome.result["partial_unexpected_counts"]]


# ---- readable results --------------------------------------------------------------------


def _target(kwargs: dict) -> str:
    """The column(s) an expectation is about, for a failure line."""
    if "column_list" in kwargs:
        return ", ".join(map(str, kwargs["column_list"]))
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return ", ".join(map(str, columns)) or "table"


def _show(value: Any) -> str:
    """A sample value as a data engineer would type it: strings quoted, dates ISO, rows as tuples."""
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, dict):
        return "(" + ", ".join(_show(v) for v in value.values()) + ")"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return repr(value)


def _samples(result: dict, masked: bool) -> str:
    """A few unexpected values with their counts, or a placeholder for PII columns."""
    counts = result.get("partial_unexpected_counts") or [
        {"value": v, "count": 1} for v in result.get("partial_unexpected_list") or []]
    counts = [c for c in counts if c["value"] is not None]
    if not counts:
        return ""
    if masked:
        return "; samples masked (PII column)"
    return "; e.g. " + ", ".join(f"{_show(c['value'])} x{c['count']}" for c in counts[:SAMPLE_COUNT])


def _observed(result: dict, kwargs: dict, masked: bool) -> str:
    """What the data showed: unexpected count and share with samples, or the observed value."""
    if "unexpected_count" in result:
        share = result.get("unexpected_percent") or 0.0
        allowed = f", allowed {100 * (1 - kwargs['mostly']):.2f}%" if "mostly" in kwargs else ""
        # GX leaves nulls out of value checks, and so out of the share and of `mostly`.
        rows, nulls = result.get("element_count") or 0, result.get("missing_count") or 0
        counted = f"{result['unexpected_count']} unexpected of " + (
            f"{rows - nulls} non-null values" if nulls else f"{rows} rows")
        return f"{counted} ({share:.2f}%{allowed})" + _samples(result, masked)
    if "observed_value" in result:
        bounds = [f"{k}={_show(kwargs[k])}" for k in ("min_value", "max_value", "value") if kwargs.get(k) is not None]
        expected = f", expected {', '.join(bounds)}" if bounds else ""
        return f"observed {_show(result['observed_value'])}{expected}"
    return "failed"


def _exception_message(info: dict) -> str | None:
    """First line of the error GX caught while evaluating an expectation, if any."""
    # GX reports either one {raised_exception, exception_message} or one such dict per metric.
    reports = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for report in reports:
        if report.get("raised_exception") or report.get("exception_message"):
            lines = str(report.get("exception_message") or "unknown error").strip().splitlines()
            return lines[0] if lines else "unknown error"
    return None


def _failure_line(entry: dict, outcome, pii: set[str], missing: list[str] | None) -> str:
    """One readable line for a failed expectation: type, column(s), description, evidence."""
    kwargs = outcome.expectation_config.kwargs if outcome is not None else entry["kwargs"]
    label = f"{entry['type']} [{_target(kwargs)}]"
    if entry["description"]:
        label += f" '{entry['description']}'"
    if missing:
        return f"{label}: references {', '.join(missing)}, which the session catalog does not hold"
    error = _exception_message(outcome.exception_info or {})
    if error is not None:
        return f"{label}: could not be evaluated: {error}"
    if entry["type"] == "unexpected_rows_expectation":
        return f"{label}: {(outcome.result or {}).get('observed_value')} unexpected rows"
    columns = set(kwargs.get("column_list") or []) | {kwargs.get(k) for k in ("column", "column_A", "column_B")}
    return f"{label}: {_observed(outcome.result or {}, kwargs, bool(columns & pii))}"


def _failures(suite: dict, validation, entry_of: dict, missing: dict[int, list[str]],
              pii: frozenset[str]) -> tuple[list[str], list[str]]:
    """Failure lines in suite order, split by severity; entries not run for missing tables count as failed."""
    failed = [(entry_of[o.expectation_config.id], o) for o in validation.results if not o.success]
    failed += [(i, None) for i in missing]
    critical, warnings = [], []
    for index, outcome in sorted(failed, key=lambda pair: pair[0]):
        entry = suite["expectations"][index]
        line = _failure_line(entry, outcome, pii, missing.get(index))
        (critical if entry["severity"] == "critical" else warnings).append(line)
    return critical, warnings


def _summarise(table: str, run_id: str, rows: int, evaluated: int, critical: list[str], warnings: list[str],
               seconds: float, docs: str | None) -> str:
    """The multi-line report a data engineer reads in a task log."""
    verdict = "FAILED" if critical else ("PASSED with warnings" if warnings else "PASSED")
    lines = [f"quality {table} (run {run_id}): {verdict}: {evaluated} expectations on {rows} rows, "
             f"{len(critical)} critical failures, {len(warnings)} warnings, {seconds:.1f}s"]
    lines += [f"  CRITICAL {line}" for line in critical]
    lines += [f"  WARNING  {line}" for line in warnings]
    if docs:
        lines.append(f"  Data Docs: {docs}")
    return "\n".join(lines)


# ---- public API --------------------------------------------------------------------------


def validate(df, table: str, *, quality_root: Path, expectations_dir: Path = EXPECTATIONS_DIR, run_id: str,
             parameters: dict | None = None, build_docs: bool = True,
             catalog_pii: Iterable[str] | None = None) -> QualityResult:
    """Run `table`'s suite on the Spark DataFrame `df`, store the result (PII masked) under `quality_root`, report it.

    `catalog_pii` is the catalog's PII columns of `table`; by default they are read from the conf folder.
    """
    started = time.monotonic()
    quality_root = Path(quality_root).resolve()
    suite = load_suite(table, expectations_dir)
    pii = pii_columns(table, suite, catalog_pii)
    parameters = dict(parameters or {})
    absent = sorted(_parameter_names([e["kwargs"] for e in suite["expectations"]]) - set(parameters))
    if absent:
        raise SuiteError(f"{suite['path']}: parameters {absent} must be passed to validate()")
    # A query on a table that does not exist yet is reported, not run: GX would retry it
    # three times and Spark would log the analysis error at length each time.
    missing = _missing_tables(df.sparkSession, suite)
    # The suite makes a dozen or more passes over the frame: compute it once, cut from its plan. A
    # cache would keep the plan, and every one of GX's queries would analyse it again and compare it
    # with the cached one (measured: most of a silver gate's time, outside any Spark job).
    checkpointed_here = not df.is_cached
    if checkpointed_here:
        df = df.localCheckpoint(eager=True)
    try:
        run = functools.partial(_run_suite, df, suite, quality_root, run_id, parameters)
        validation, key, entry_of = run(frozenset(missing), _GATE_FORMAT, pii)
        if not validation.success:
            # Evidence (counts, sample values) only for what failed: the passing expectations are
            # already settled, and a warning alone would otherwise run the whole suite twice.
            failed = {entry_of[o.expectation_config.id] for o in validation.results if not o.success}
            passed = frozenset(range(len(suite["expectations"]))) - failed
            validation, key, entry_of = run(frozenset(missing) | passed, _EVIDENCE_FORMAT, pii)
            # The stored suite (Data Docs' suite page) is the whole one again, not the rerun's part.
            _definition(_context(quality_root), build_suite(suite, frozenset(missing)))
        rows = df.count()
    finally:
        if checkpointed_here:
            df.unpersist()
    critical, warnings = _failures(suite, validation, entry_of, missing, pii)
    docs = _build_docs(quality_root, [key]) if build_docs else None
    evaluated = len(suite["expectations"])
    summary = _summarise(table, run_id, rows, evaluated, critical, warnings, time.monotonic() - started, docs)
    log.log(logging.ERROR if critical else logging.WARNING if warnings else logging.INFO, "%s", summary)
    return QualityResult(table=table, success=not critical, evaluated=evaluated, critical_failures=critical,
                         warnings=warnings, summary=summary, data_docs_index=docs)


def gate(result: QualityResult) -> None:
    """Raise QualityGateError when a critical expectation of `result` failed."""
    if not result.success:
        raise QualityGateError(result)


def _build_docs(quality_root: Path, results: list | None) -> str:
    """Render the pages of `results` (every result when None) and the index; returns the index path."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    resources = None
    if results is not None:
        # GX reads an empty list as "everything"; with results there is always a suite page too.
        suites = {r.expectation_suite_identifier.name for r in results}
        resources = list(results) + [ExpectationSuiteIdentifier(name=s) for s in sorted(suites)]
    _context(quality_root).build_data_docs(site_names=[DOCS_SITE], resource_identifiers=resources)
    return str(_docs_dir(quality_root) / "index.html")


def _unrendered(quality_root: Path) -> list:
    """Stored validation results without a Data Docs page yet (those validated with build_docs=False)."""
    pages = _docs_dir(quality_root) / "validations"
    keys = _context(quality_root).validation_results_store.list_keys()
    return [k for k in keys if not pages.joinpath(*k.to_tuple()[:-1], f"{k.to_tuple()[-1]}.html").exists()]


def mask_stored_results(quality_root: Path, expectations_dir: Path = EXPECTATIONS_DIR) -> int:
    """Mask every stored validation result again with the PII columns declared now; returns how many changed.

    For results stored before a column was declared PII (or before results were masked at all);
    rebuild the Data Docs with build_data_docs(full=True) afterwards, so their pages change too.
    """
    store = _context(Path(quality_root).resolve()).validation_results_store
    changed = 0
    for key in store.list_keys():
        table = key.expectation_suite_identifier.name
        try:
            suite = load_suite(table, expectations_dir)
        except SuiteError:
            # A suite since removed: the catalog's declaration still applies.
            suite = {"pii": []}
        result = store.get(key)
        before = result.to_json_dict()
        mask_pii(result, pii_columns(table, suite))
        if result.to_json_dict() != before:
            store.set(key, result)
            changed += 1
    log.info("quality: masked PII in %d stored validation results", changed)
    return changed


def build_data_docs(quality_root: Path, full: bool = False) -> str:
    """Render Data Docs for stored results that have no page yet (all with full=True); returns index.html."""
    quality_root = Path(quality_root).resolve()
    index = _docs_dir(quality_root) / "index.html"
    todo = None if full else _unrendered(quality_root)
    if todo == [] and index.exists():
        log.info("quality Data Docs: %s (up to date)", index)
        return str(index)
    _build_docs(quality_root, todo or None)
    log.info("quality Data Docs: %s (%s)", index, f"{len(todo)} new results" if todo else "full build")
    return str(index)
