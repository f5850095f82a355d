"""`c360` command line: generate, ingest, conform, features, quality, tables, history, show, lineage, resolve, identity, demo."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from typing import Callable

from c360 import entry
from c360.errors import EXIT_DATA_ERROR, EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_USER_ERROR, UserError

# Re-exported: the identity sub-commands and scripts import the exit codes and UserError from here.
__all__ = ["EXIT_DATA_ERROR", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "EXIT_USER_ERROR", "UserError", "build_parser",
           "main"]
log = logging.getLogger("c360")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _config(args: argparse.Namespace, tables: list[str] | None = None):
    """Config for a command, with `tables` checked against the catalog (no Spark needed to fail here)."""
    from c360.catalog import load_catalog
    from c360.config import load_config

    cfg = load_config(args.env)
    catalog = load_catalog(cfg)
    for name in tables or []:
        catalog.table(name)
    return cfg


def _spark(cfg):
    """The SparkSession of a command (pyspark is imported only by commands that need it)."""
    from c360.pipeline import configure_logging
    from c360.spark import get_spark

    configure_logging()
    return get_spark(cfg)


def _context(args: argparse.Namespace, tables: list[str] | None = None):
    """Config and SparkSession for a command; a bad config or table name fails before Spark starts."""
    cfg = _config(args, tables)
    return cfg, _spark(cfg)


def _landing_dates(spark, cfg) -> list[dt.date]:
    from c360 import landing

    return landing.landing_dates(cfg)


# ---- commands -----------------------------------------------------------------------------

def cmd_generate(args: argparse.Namespace) -> int:
    """Write a synthetic bank's landing files and ground truth."""
    from pathlib import Path

    from c360.config import load_config
    from c360.datagen import DatagenParams, generate_bank

    from c360.pipeline import configure_logging

    configure_logging()
    cfg = load_config(args.env)
    d = cfg.datagen
    params = DatagenParams(
        customers=args.customers or d.customers, seed=args.seed if args.seed is not None else d.seed,
        start_date=args.start_date or d.start_date, days=args.days or d.days,
        bad_row_rate=d.bad_row_rate, history_months=d.history_months,
    )
    started = time.perf_counter()
    manifest = generate_bank(params, Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)),
                             cfg.conf_dir / "sources.yaml", progress=sys.stderr.isatty() or args.progress)
    files = manifest.get("files", [])
    records = sum(f["records"] for f in files)
    bad = sum(f["bad"] for f in files)
    _out(f"generated {params.customers} customers over {params.days} landing dates: {len(files)} files, "
         f"{records} records ({bad} deliberately bad) in {time.perf_counter() - started:.1f}s")
    _out(f"landing: {cfg.path(cfg.lakehouse.landing)}\ntruth:   {cfg.path(cfg.lakehouse.truth)}")
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest landing files into bronze (one date, or every landed date in order)."""
    from c360 import landing, pipeline
    from c360 import ingest as bronze_ingest

    cfg = _config(args)
    landed = landing.landing_dates(cfg)
    if not landed:
        raise UserError(f"no landing files under {cfg.path(cfg.lakehouse.landing)}; run `c360 generate` first")
    if args.date and not landing.list_files(cfg, args.date):
        raise UserError(f"no landing files for {args.date} under {cfg.path(cfg.lakehouse.landing)}; landed dates: "
                        f"{', '.join(map(str, landed))}")
    spark = _spark(cfg)
    dates = [args.date] if args.date else landed
    for day in dates:
        run = pipeline.new_run(cfg, bronze_ingest.JOB, day, args.run_id)
        report = bronze_ingest.run_ingest(spark, cfg, run, day)
        # The files a data engineer must look at, with the same numbers bronze.ingest_log keeps.
        for f in report.files:
            if not f["skipped"] and (f["quarantined"] or f["status"] != "ingested"):
                _out(f"  {f['source_file']}: {f['status']}, {f['size_bytes']} bytes, {f['physical_lines']} lines, "
                     f"{f['records']} records, {f['accepted']} accepted, {f['quarantined']} quarantined")
        totals = report.totals()
        _out(f"ingest {day}: {totals['files']} files ({totals['skipped']} already ingested), "
             f"{totals['records']} records, {totals['accepted']} accepted, {totals['quarantined']} quarantined")
    return EXIT_OK


def cmd_conform(args: argparse.Namespace) -> int:
    """Build the silver tables from bronze (for one run date, or each landed date in order)."""
    from c360 import conform as silver_conform
    from c360 import pipeline

    cfg, spark = _context(args, args.table)
    dates = [args.date] if args.date else _landing_dates(spark, cfg)
    for day in dates:
        run = pipeline.new_run(cfg, silver_conform.JOB, day, args.run_id)
        results = silver_conform.run_conform(spark, cfg, run, day, args.table)
        for table, stats in results.items():
            version = "unchanged" if stats.version is None else f"v{stats.version}"
            _out(f"conform {day} {table:28} {version:>9}  +{stats.inserted} ~{stats.updated} -{stats.deleted}")
    return EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    """Build features.customer_daily as of a date (with --history, the training as-of dates too) and churn labels."""
    from c360 import features, pipeline

    cfg, spark = _context(args)
    dates = [args.date] if args.date else _landing_dates(spark, cfg)[-1:]
    if not dates:
        raise UserError("no landed date to build features for: give --date")
    run = pipeline.new_run(cfg, features.JOB, dates[0], args.run_id)
    for stats in features.build(spark, cfg, run, history=args.history):
        version = "unchanged" if stats.version is None else f"v{stats.version}"
        _out(f"features {dates[0]} {stats.table:28} {version:>9}  {stats.inserted} rows")
    return EXIT_OK


def cmd_quality(args: argparse.Namespace) -> int:
    """Run quality suites on the current version of tables (all existing silver and bronze by default)."""
    from c360 import io, pipeline, quality
    from c360.catalog import load_catalog

    if args.mask_stored:
        cfg = _config(args)
        root = cfg.path(cfg.lakehouse.quality)
        changed = quality.mask_stored_results(root)
        _out(f"masked PII columns' values in {changed} stored validation results")
        _out(f"Data Docs: {quality.build_data_docs(root, full=True)}")
        return EXIT_OK
    cfg, spark = _context(args, args.table)
    names = args.table or [n for n in sorted(load_catalog(cfg).tables) if io.exists(spark, cfg, n)]
    run = pipeline.new_run(cfg, "quality_check", None, args.run_id)
    failed = 0
    for name in names:
        if not io.exists(spark, cfg, name):
            raise UserError(f"table {name} has not been created yet")
        version = io.current_version(spark, cfg, name)
        result = pipeline.audit(spark, cfg, name, version - 1 if version else None, run)
        failed += not result.success
        status = "passed" if result.success else "FAILED"
        _out(f"{name:32} v{version:<4} {status}  ({result.evaluated} checks, {len(result.warnings)} warnings)")
        for line in result.critical_failures + result.warnings:
            _out(f"    {line}")
    docs = quality.build_data_docs(cfg.path(cfg.lakehouse.quality))
    _out(f"Data Docs: {docs}")
    return EXIT_DATA_ERROR if failed else EXIT_OK


def cmd_tables(args: argparse.Namespace) -> int:
    """List catalogued tables with grain, current version and row count."""
    from c360 import io
    from c360.catalog import load_catalog

    cfg, spark = _context(args)
    _out(f"{'table':32} {'version':>7} {'rows':>10}  grain")
    for name, table in sorted(load_catalog(cfg).tables.items()):
        if io.exists(spark, cfg, name):
            version, rows = io.current_version(spark, cfg, name), io.read(spark, cfg, name).count()
        else:
            version, rows = "-", "-"
        _out(f"{name:32} {version!s:>7} {rows!s:>10}  {table.grain}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Show a table's Delta history with the job and run that made each version."""
    from c360 import io

    cfg, spark = _context(args, [args.table])
    if not io.exists(spark, cfg, args.table):
        raise UserError(f"table {args.table} has not been created yet")
    rows = io.history(spark, cfg, args.table, args.limit).select(
        "version", "timestamp", "operation", "userMetadata", "operationMetrics").collect()
    _out(f"{'version':>7}  {'timestamp':19}  {'operation':16} {'job':16} {'run_id':34} rows")
    for r in rows:
        meta = json.loads(r.userMetadata) if r.userMetadata else {}
        metrics = r.operationMetrics or {}
        written = metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted") or "-"
        _out(f"{r.version:>7}  {r.timestamp:%Y-%m-%d %H:%M:%S}  {r.operation:16} {meta.get('job', '-'):16} "
             f"{meta.get('run_id', '-'):34} {written}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Show rows of a table, optionally as of a version or timestamp and filtered by a SQL condition."""
    from pyspark.errors import AnalysisException

    from c360 import io

    cfg, spark = _context(args, [args.table])
    if not io.exists(spark, cfg, args.table):
        raise UserError(f"table {args.table} has not been created yet")
    try:
        df = io.read(spark, cfg, args.table, version=args.version, timestamp=args.timestamp)
        if args.where:
            df = df.where(args.where)
        if args.columns:
            df = df.select(*[c.strip() for c in args.columns.split(",")])
        df.show(args.limit, truncate=args.truncate or False, vertical=args.vertical)
    except AnalysisException as exc:
        raise UserError(f"{args.table}: {str(exc).splitlines()[0]}") from None
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    """Where a run's time went: each job's phases with wall seconds, Spark jobs and time outside Spark."""
    from c360 import profile
    from c360.config import load_config

    cfg = load_config(args.env)
    profiles = profile.load(cfg, args.run_id)
    if not profiles:
        raise UserError(f"no profile for run {args.run_id!r} under {profile.profile_dir(cfg, args.run_id)}")
    _out(profile.render(profiles))
    return EXIT_OK


def cmd_lineage(args: argparse.Namespace) -> int:
    """Upstream tables and jobs of a table, and the runs behind its recent versions (no JVM needed)."""
    from c360 import lineage
    from c360.config import load_config

    cfg = load_config(args.env)
    _out(lineage.render(lineage.report(cfg, args.table, args.versions)))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run c360_daily through Airflow for each date of a default-size bank (or in one Spark session) and summarise."""
    if args.in_process:
        from c360 import demo

        return demo.run(args.env, customers=args.customers, out=_out)
    from c360 import airflow_demo

    return airflow_demo.run(args.env, customers=args.customers, out=_out)


# ---- parser -------------------------------------------------------------------------------

def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="c360", description="Customer 360 lakehouse for retail banks.",
                                     epilog="Exit codes: 0 ok, 1 unexpected error (a bug or the machine; worth a "
                                            "retry), 2 usage, 3 user error, 4 data error (a failed quality gate).")
    parser.add_argument("--env", help="config overlay (default: $C360_ENV or local)")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of user and data errors too (or set {entry.DEBUG_VAR}=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, **kwargs) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=func.__doc__, description=func.__doc__, **kwargs)
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate)
    p.add_argument("--customers", type=int, help="number of persons (default: datagen.customers)")
    p.add_argument("--seed", type=int)
    p.add_argument("--days", type=int, help="landing dates to write")
    p.add_argument("--start-date", type=_date)
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    for name, func in (("ingest", cmd_ingest), ("conform", cmd_conform)):
        p = add(name, func)
        p.add_argument("--date", type=_date, help="run date YYYY-MM-DD (default: every landed date, in order)")
        p.add_argument("--run-id", help="run id for commit metadata (default: $C360_RUN_ID or a manual__ id)")
        if name == "conform":
            p.add_argument("--table", action="append", help="only this silver table (repeatable)")
    p = add("features", cmd_features)
    p.add_argument("--date", type=_date, help="as-of date YYYY-MM-DD (default: the latest landed date)")
    p.add_argument("--history", action="store_true", help="also the training as-of dates (conf/features.yaml)")
    p.add_argument("--run-id")
    p = add("quality", cmd_quality)
    p.add_argument("--table", action="append", help="only this table (repeatable)")
    p.add_argument("--mask-stored", action="store_true",
                   help="instead: mask PII in results stored before their columns were declared PII, rebuild Data Docs")
    p.add_argument("--run-id")
    add("tables", cmd_tables)
    p = add("history", cmd_history)
    p.add_argument("table")
    p.add_argument("--limit", type=int, default=20)
    p = add("show", cmd_show)
    p.add_argument("table")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--version", type=int, help="time travel to this version")
    when.add_argument("--timestamp", help="time travel to this time, e.g. '2026-10-02 08:00:00'")
    p.add_argument("--where", help="SQL condition, e.g. \"source_system = 'cards'\"")
    p.add_argument("--columns", help="comma-separated columns to show")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--truncate", type=int, help="cut values to this many characters")
    p.add_argument("--vertical", action="store_true", help="one field per line")
    p = add("profile", cmd_profile)
    p.add_argument("run_id", help="run id, as in the job log or the Airflow DAG run id")
    p = add("lineage", cmd_lineage)
    p.add_argument("table", help="catalog table, e.g. gold.customer_360")
    p.add_argument("--versions", type=int, default=10, help="recent versions to show")
    p = add("demo", cmd_demo)
    p.add_argument("--customers", type=int, help="bank size (default: datagen.customers)")
    p.add_argument("--in-process", action="store_true",
                   help="run the jobs in this process's one SparkSession instead of through Airflow (faster to debug)")
    from c360.identity import cli as identity_cli

    identity_cli.register(sub)
    from c360 import models_cli

    models_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `c360` console script: a user or data error is one line and its exit code."""
    args = build_parser().parse_args(argv)
    return entry.run_main(args.func, args, debug=args.debug or entry.debug_enabled())


if __name__ == "__main__":
    sys.exit(main())
