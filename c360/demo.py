"""`make demo`: a default-size synthetic bank through bronze, silver, identity resolution and gold, quality-gated, then summarised."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Callable

from pyspark.sql import functions as F

from c360 import io, pipeline, quality
from c360.catalog import load_catalog
from c360.config import load_config
from c360.datagen import DatagenParams, generate_bank
from c360.spark import get_spark
from c360.identity import evaluation, service
from c360.identity.cli import evaluation_lines, summary_lines
from c360.identity.conf import load_identity_conf
from c360 import conform as silver_conform, ingest as bronze_ingest, publish as publish_gold


def run(env: str | None, customers: int | None, out: Callable[[str], None]) -> int:
    """Run the demo pipeline in one Spark session and print tables, versions, quarantine and Data Docs."""
    pipeline.configure_logging()
    cfg = load_config(env)
    params = DatagenParams(**{f.name: getattr(cfg.datagen, f.name) for f in dataclasses.fields(DatagenParams)
                              if hasattr(cfg.datagen, f.name)})
    if customers:
        params = dataclasses.replace(params, customers=customers)
    started = time.perf_counter()
    manifest = generate_bank(params, Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)),
                             cfg.conf_dir / "sources.yaml", progress=True)
    out(f"1/4 generated {params.customers} customers, {len(manifest['files'])} landing files "
        f"({time.perf_counter() - started:.0f}s)")
    spark = get_spark(cfg)
    dates = [params.start_date + dt.timedelta(days=i) for i in range(params.days)]
    # Date by date, as the daily DAG runs: each day's silver versions hold only what had landed by then.
    for day in dates:
        run_ = pipeline.new_run(cfg, bronze_ingest.JOB, day)
        totals = bronze_ingest.run_ingest(spark, cfg, run_, day).totals()
        out(f"2/4 ingest {day}: {totals['records']} records, {totals['accepted']} accepted, "
            f"{totals['quarantined']} quarantined, {totals['skipped']} files already ingested")
        silver_conform.run_conform(spark, cfg, pipeline.new_run(cfg, silver_conform.JOB, day), day)
        out(f"3/4 conform {day}: silver tables merged, every write passed its quality gate")
    # Identity runs once over the conformed silver: the first run trains and stores the model.
    last = dates[-1]
    report = service.run_resolution(spark, cfg, pipeline.new_run(cfg, service.JOB, last))
    gold = publish_gold.publish(spark, cfg, pipeline.new_run(cfg, publish_gold.JOB, last))
    # The demo's bank is synthetic, so it can show F1: an explicit evaluation, not part of the run.
    scored = evaluation.evaluate(spark, load_identity_conf(cfg),
                                 evaluation.current_assignment(io.read(spark, cfg, service.XREF)))
    first, *rest = summary_lines(report, gold) + evaluation_lines(scored)
    out(f"4/4 {first}")
    for line in rest:
        out(f"    {line.strip()}")
    _summary(spark, cfg, out, time.perf_counter() - started)
    return 0


def _summary(spark, cfg, out: Callable[[str], None], seconds: float) -> None:
    out("")
    out(f"{'table':32} {'version':>7} {'rows':>10}")
    for name in sorted(load_catalog(cfg).tables):
        if io.exists(spark, cfg, name):
            out(f"{name:32} {io.current_version(spark, cfg, name):>7} {io.read(spark, cfg, name).count():>10}")
    reasons = (io.read(spark, cfg, "bronze.quarantine").groupBy("reason").count().orderBy(F.desc("count")).collect()
               if io.exists(spark, cfg, "bronze.quarantine") else [])
    out("quarantine by reason: " + (", ".join(f"{r.reason} {r['count']}" for r in reasons) or "none"))
    out(f"Data Docs:  {quality.build_data_docs(cfg.path(cfg.lakehouse.quality))}")
    out(f"lakehouse:  {cfg.path(cfg.lakehouse.root)}")
    out(f"done in {seconds:.0f}s. Try: c360 history silver.customer_records; "
        "c360 show silver.customer_records --version 0 --limit 5")
