"""`make demo` through Airflow: c360_daily runs for every date of the default synthetic bank, then a summary.

After the first date, c360_models builds the feature history and trains and gates every model, so
the later dates' c360_daily runs score with the champions; the summary names each champion, its
holdout metrics and its model card.

Each date is one `airflow dags test` run on a project-local SQLite metadata database (no
scheduler or webserver), so the demo exercises exactly what a data engineer schedules: the
DAG, its spark-submit tasks, quality gates, run-log callbacks and OpenLineage events.
The summary reads Delta logs and the run log without a JVM; identity's accuracy against the
generator's truth comes from an explicit `c360 identity evaluate` (never part of the runs).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from c360 import lineage, orchestration
from c360.catalog import load_catalog
from c360.config import Config, load_config
from c360.identity.conf import load_identity_conf


def demo_environ(env: str | None, customers: int | None) -> dict[str, str]:
    """The environment of the demo's Airflow runs: conf overlay, bank size, fail fast instead of retrying."""
    environ = dict(os.environ)
    if env:
        environ["C360_ENV"] = env
    if customers:
        environ["C360__DATAGEN__CUSTOMERS"] = str(customers)
    # Demo mode generates the bank; a failing task fails the demo at once rather than
    # waiting out production's retry backoff.
    environ.setdefault("C360__ORCHESTRATION__DEMO", "true")
    environ.setdefault("C360__ORCHESTRATION__RETRIES", "0")
    return environ


def run(env: str | None, customers: int | None, out: Callable[[str], None]) -> int:
    """Run c360_daily through Airflow for each landing date of the demo bank and print the summary."""
    environ = demo_environ(env, customers)
    cfg = load_config(env, environ=environ)
    params = orchestration.demo_params(cfg)
    first, last = params.start_date, params.start_date + dt.timedelta(days=params.days - 1)
    out(f"c360 demo: {params.customers} customers, c360_daily for {first}..{last} through Airflow "
        f"(airflow dags test, AIRFLOW_HOME={orchestration.airflow_home(cfg)})")
    started = time.perf_counter()
    # The models train on the first date's history; the later dates are scored by their champions.
    steps = [(orchestration.DAILY_DAG, first, first), (orchestration.MODELS_DAG, first, first)]
    if last > first:
        steps.append((orchestration.DAILY_DAG, first + dt.timedelta(days=1), last))
    for dag_id, start, end in steps:
        results = orchestration.backfill(cfg, start, end, dag_id=dag_id, out=out, environ=environ)
        if not results or results[-1][1] != 0:
            day = results[-1][0] if results else start
            log_file = orchestration.airflow_home(cfg) / "runs" / f"{dag_id}_{day.isoformat()}.log"
            out(f"{dag_id} failed for {day}; the task logs are in {log_file}")
            return 1
    summary(cfg, out, time.perf_counter() - started, environ)
    return 0


def identity_evaluation(environ: dict[str, str]) -> list[str]:
    """`c360 identity evaluate` on the demo's lakehouse (a Spark job of its own): its lines, or why there are none."""
    done = subprocess.run([str(Path(sys.executable).parent / "c360"), "identity", "evaluate"], env=environ,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"identity: no accuracy figures ({error})"]
    return lines


def mlflow_uri(cfg: Config) -> str | None:
    """The MLflow tracking store the pipeline logs to (identity runs, later models)."""
    return load_identity_conf(cfg).mlflow.tracking_uri


def champions(cfg: Config) -> list[str]:
    """Each model's champion: version, algorithm, holdout metrics and where its model card is."""
    from c360 import modeling

    registry = modeling.model_registry(cfg)
    lines = []
    for name in modeling.model_names(cfg):
        champion = registry.champion(name)
        if champion is None:
            versions = registry.versions(name)
            lines.append(f"model {name}: no champion ({versions[-1].reason if versions else 'not trained'})")
            continue
        metrics = registry.client.get_run(champion.run_id).data.metrics
        lines.append(f"model {name}: champion v{champion.version} ({champion.algorithm}), holdout roc_auc "
                     f"{metrics.get('roc_auc', float('nan')):.3f} pr_auc {metrics.get('pr_auc', float('nan')):.3f}; "
                     f"card {registry.card(name, champion.version)}")
    if lines:
        venv = Path(sys.executable).parent
        lines.append(f"scores:     {venv / 'c360'} show gold.scores --columns entity_id,score,band,reason_1_text")
    return lines


def task_times(cfg: Config, run_id: str | None = None) -> list[dict]:
    """Run-log rows of one DAG run (the newest c360_daily run by default), in the order they finished."""
    table = lineage.open_table(cfg, orchestration.RUN_LOG)
    if table is None:
        return []
    rows = [r for r in table.to_pyarrow_table().to_pylist() if r["dag_id"] == orchestration.DAILY_DAG]
    if not rows:
        return []
    run_id = run_id or max(rows, key=lambda r: r["recorded_at"])["run_id"]
    return sorted((r for r in rows if r["run_id"] == run_id), key=lambda r: r["recorded_at"])


def summary(cfg: Config, out: Callable[[str], None], seconds: float, environ: dict[str, str]) -> None:
    """Print tables with rows and versions, identity F1, task times, and where to look next."""
    out("")
    out(f"{'table':32} {'version':>7} {'rows':>10}")
    for name in sorted(load_catalog(cfg).tables):
        state = lineage.table_state(cfg, name)
        if state is not None:
            out(f"{name:32} {state[0]:>7} {state[1]:>10}")
    for line in identity_evaluation(environ):
        out(line)
    times = task_times(cfg)
    if times:
        out("last run, seconds per task: " + ", ".join(
            f"{r['task_id']} {r['duration_s']:.0f}" for r in times if r["task_id"] != orchestration.DAG_RUN_TASK))
    events = lineage.events_dir(cfg)
    counts = {p.name: sum(1 for _ in open(p, encoding="utf-8")) for p in sorted(events.glob("*.jsonl"))}
    home = orchestration.airflow_home(cfg)
    venv = Path(sys.executable).parent
    out(f"Data Docs:  {Path(cfg.path(cfg.lakehouse.quality)) / 'data_docs' / 'index.html'}")
    out(f"lineage:    {events} ({', '.join(f'{n} {c} events' for n, c in counts.items()) or 'no events'}); "
        f"try {venv / 'c360'} lineage gold.customer_360")
    out(f"run log:    ops.run_log at {load_catalog(cfg).table(orchestration.RUN_LOG).location(cfg)}")
    out(f"Airflow UI: {venv / 'python'} -m c360.orchestration standalone   "
        f"(airflow standalone on {home}, http://localhost:8080)")
    for line in champions(cfg):
        out(line)
    uri = mlflow_uri(cfg)
    if uri:
        out(f"MLflow UI:  {venv / 'mlflow'} ui --backend-store-uri {uri}   (http://localhost:5000)")
    out(f"done in {seconds:.0f}s. Rerun a date: {venv / 'python'} -m c360.orchestration run {cfg.datagen.start_date}")
