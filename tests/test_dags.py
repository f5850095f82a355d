"""DAG integrity and the orchestration helpers: every DAG file parses fast, with owner, retries, tags and docs.

The DAGs are parsed in a child process whose environment is exactly what the demo and the
tests give `airflow` (project-local AIRFLOW_HOME, this repo's dags/), so nothing here touches
a real ~/airflow, and the timing is the DAG files' own, with Airflow's modules already loaded
as they are in the DAG processor.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from c360 import lineage, modeling, orchestration
from c360.config import load_config

DAG_FILES = sorted(p.name for p in orchestration.DAGS_FOLDER.glob("c360_*.py"))
HEAVY = ("pyspark", "pandas", "great_expectations", "deltalake", "pyarrow", "numpy", "splink", "mlflow")

_PARSE = textwrap.dedent("""
    import json, sys, time
    import airflow.sdk  # noqa: F401  (loaded before timing, as in the DAG processor)
    import airflow.providers.apache.spark.operators.spark_submit  # noqa: F401
    from pathlib import Path
    from airflow.dag_processing.dagbag import BundleDagBag
    out = {"files": {}, "dags": {}, "errors": {}}
    for path in sys.argv[1:]:
        started = time.perf_counter()
        bag = BundleDagBag(dag_folder=path, bundle_path=Path(path).parent)
        out["files"][path] = time.perf_counter() - started
        out["errors"].update({k: str(v) for k, v in bag.import_errors.items()})
        for dag_id, dag in bag.dags.items():
            tasks = {t.task_id: {"owner": t.owner, "retries": t.retries, "backoff": bool(t.retry_exponential_backoff),
                                 "upstream": sorted(t.upstream_task_ids), "on_failure": bool(t.on_failure_callback),
                                 "on_success": bool(t.on_success_callback),
                                 "outlets": [getattr(o, "uri", None) for o in t.outlets],
                                 "type": type(t).__name__} for t in dag.tasks}
            out["dags"][dag_id] = {"tags": sorted(dag.tags), "doc": bool(dag.doc_md), "catchup": dag.catchup,
                                   "owner": dag.owner, "tasks": tasks, "schedule": repr(getattr(dag.timetable, "asset_condition", dag.timetable)),
                                   "max_active_runs": dag.max_active_runs}
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
    out["heavy"] = heavy
    print("RESULT " + json.dumps(out))
""" % (HEAVY,))


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """Every DAG file parsed by a DagBag in a child process with the project's Airflow environment."""
    root = tmp_path_factory.mktemp("dags")
    environ = {"C360__LAKEHOUSE__ROOT": str(root / "lakehouse"), "C360__ORCHESTRATION__AIRFLOW_HOME": str(root / "airflow"),
               "C360__LINEAGE__EVENTS": str(root / "lineage")}
    cfg = load_config(environ=environ)
    env = orchestration.airflow_env(cfg, {**_clean_environ(), **environ})
    files = [str(orchestration.DAGS_FOLDER / f) for f in DAG_FILES]
    proc = subprocess.run([sys.executable, "-c", _PARSE, *files], env=env, capture_output=True, text=True, timeout=300)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, proc.stderr[-3000:]
    return cfg, json.loads(line[len("RESULT "):])


def _clean_environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("C360__", "AIRFLOW"))}


def test_every_dag_file_imports_without_errors(parsed):
    _, result = parsed
    assert DAG_FILES == ["c360_daily.py", "c360_maintenance.py", "c360_models.py"]
    assert result["errors"] == {}
    assert set(result["dags"]) == {"c360_daily", "c360_maintenance", "c360_models"}


def test_each_dag_file_parses_in_under_two_seconds_without_heavy_imports(parsed):
    _, result = parsed
    for path, seconds in result["files"].items():
        assert seconds < 2.0, f"{path} took {seconds:.2f}s to parse"
    assert result["heavy"] == [], "DAG files must not import Spark, pandas, GX or delta-rs at parse time"


def test_every_dag_has_owner_tags_docs_retries_and_deliberate_catchup(parsed):
    cfg, result = parsed
    for dag_id, dag in result["dags"].items():
        assert dag["doc"], dag_id
        assert "c360" in dag["tags"], dag_id
        assert dag["max_active_runs"] == 1, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == cfg.orchestration.owner, task_id
            assert task["retries"] == cfg.orchestration.retries and task["retries"] >= 1, task_id
            assert task["backoff"], task_id
            assert task["on_failure"] and task["on_success"], task_id
    assert result["dags"]["c360_daily"]["catchup"] is cfg.orchestration.catchup
    assert result["dags"]["c360_maintenance"]["catchup"] is False


def test_daily_dag_runs_the_layers_in_order_and_publishes_table_assets(parsed):
    cfg, result = parsed
    tasks = result["dags"]["c360_daily"]["tasks"]
    order = ["land.generate_or_land", "bronze.ingest", "silver.conform", "quality.check", "identity.resolve",
             "gold.publish", "features.build", "scores.any_champion", "scores.score"]
    assert sorted(tasks) == sorted(order)
    for upstream, task_id in zip(order, order[1:]):
        assert tasks[task_id]["upstream"] == [upstream]
    assert {tasks[t]["type"] for t in order[1:] if t != "scores.any_champion"} == {"C360SparkSubmitOperator"}
    assert orchestration.table_uri(cfg, "gold.scores") in tasks["scores.score"]["outlets"]
    assert orchestration.table_uri(cfg, "features.customer_daily") in tasks["features.build"]["outlets"]
    assert orchestration.table_uri(cfg, "silver.accounts") in tasks["silver.conform"]["outlets"]
    assert orchestration.table_uri(cfg, "bronze.quarantine") in tasks["bronze.ingest"]["outlets"]
    assert orchestration.table_uri(cfg, "gold.customer_360") in tasks["gold.publish"]["outlets"]
    assert orchestration.table_uri(cfg, "silver.customer_xref") in tasks["identity.resolve"]["outlets"]
    assert all(uri.startswith("file:///") for uri in tasks["silver.conform"]["outlets"])


def test_models_dag_builds_history_then_trains_each_spec(parsed):
    cfg, result = parsed
    dag = result["dags"]["c360_models"]
    assert dag["catchup"] is False
    trains = sorted(t for t in dag["tasks"] if t.startswith("train."))
    assert trains == [f"train.{name}" for name in modeling.model_names(cfg)] and trains
    assert all(dag["tasks"][t]["upstream"] == ["features.history"] for t in trains)


def test_maintenance_runs_when_gold_is_published(parsed):
    _, result = parsed
    dag = result["dags"]["c360_maintenance"]
    assert "gold.customer_360" in dag["schedule"] or "Asset" in dag["schedule"]
    assert dag["tasks"]["compact.vacuum"]["upstream"] == ["compact.optimize"]
    assert dag["tasks"]["compact.optimize"]["upstream"] == ["history.check"]


# ---- helpers ------------------------------------------------------------------------------

def test_airflow_env_is_project_local_and_configures_lineage_and_spark(tmp_path):
    cfg = load_config(environ={"C360__ORCHESTRATION__AIRFLOW_HOME": str(tmp_path / "af"),
                               "C360__LINEAGE__EVENTS": str(tmp_path / "ol"), "C360__SPARK__MASTER": "local[2]"})
    env = orchestration.airflow_env(cfg, environ={"PATH": "/usr/bin"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "af")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(orchestration.DAGS_FOLDER)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == {"conn_type": "spark", "host": "local[2]"}
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {"type": "file", "log_file_path": str(tmp_path / "ol" / "airflow.jsonl"), "append": True}
    assert (tmp_path / "ol").is_dir()
    # A connection Airflow already defines (e.g. a cluster) is left alone.
    mine = orchestration.airflow_env(cfg, environ={"AIRFLOW_CONN_SPARK_DEFAULT": "spark://m:7077"})
    assert mine["AIRFLOW_CONN_SPARK_DEFAULT"] == "spark://m:7077"


def test_marquez_url_adds_an_http_transport_beside_the_file(tmp_path):
    cfg = load_config(environ={"C360__LINEAGE__EVENTS": str(tmp_path), "C360__LINEAGE__MARQUEZ_URL": "http://mq:5000"})
    transport = lineage.airflow_transport(cfg)
    assert transport["type"] == "composite"
    assert transport["transports"]["marquez"] == {"type": "http", "url": "http://mq:5000", "endpoint": "api/v1/lineage"}
    spark = lineage.spark_settings(cfg)
    assert spark["spark.openlineage.transport.type"] == "composite"
    assert spark["spark.openlineage.transport.transports.file.location"] == str(tmp_path / "spark.jsonl")
    assert spark["spark.openlineage.transport.transports.marquez.url"] == "http://mq:5000"
    off = load_config(environ={"C360__LINEAGE__ENABLED": "false"})
    assert lineage.spark_settings(off) == {}


def test_spark_submit_gets_the_projects_jars_and_the_lineage_listener(tmp_path):
    cfg = load_config(environ={"C360__LINEAGE__EVENTS": str(tmp_path)})
    conf = orchestration.spark_submit_conf(cfg)
    jars = conf["spark.jars"].split(",")
    assert any("delta-spark" in j for j in jars) and any("openlineage-spark" in j for j in jars)
    assert conf["spark.extraListeners"] == lineage.SPARK_LISTENER
    assert conf["spark.openlineage.transport.location"] == str(tmp_path / "spark.jsonl")
    env = orchestration.job_env("spark://m:7077", "c360_silver_conform", environ={})
    assert env["C360__SPARK__MASTER"] == "spark://m:7077" and env["PYSPARK_PYTHON"] == sys.executable


def test_only_tasks_pattern_marks_every_other_task():
    pattern = re.compile(orchestration.only_tasks_pattern(["silver.conform", "quality.check"]))
    assert not pattern.fullmatch("silver.conform") and not pattern.fullmatch("quality.check")
    assert pattern.fullmatch("bronze.ingest") and pattern.fullmatch("silver.conform_x")


def test_a_failed_quality_gate_is_recognised_by_the_jobs_exit_code():
    tail = ("Cannot execute: spark-submit ... Error code is: 4.\nLast spark-submit output:\n"
            "2026-10-02 10:00:00,000 ERROR c360.quality: quality silver.accounts (run r1): FAILED\n"
            "c360: error: quality silver.accounts (run r1): FAILED: 12 expectations\n"
            "  CRITICAL expect_column_values_to_be_unique [account_id]: 2 unexpected")
    code = orchestration.submit_exit_code(tail)
    assert code == 4 and orchestration.permanent_failure(code)
    assert orchestration.error_report(tail).startswith("quality silver.accounts (run r1): FAILED: 12 expectations")
    assert "CRITICAL" in orchestration.error_report(tail)
    # A bug or the machine (exit 1, a JVM killed with 137): worth a retry, and no report of the job's own.
    assert not orchestration.permanent_failure(1) and not orchestration.permanent_failure(137)
    assert not orchestration.permanent_failure(None)
    assert orchestration.error_report("Cannot execute: spark-submit ... Error code is: 137.") is None


_SUBMIT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from _common import C360SparkSubmitOperator
    from airflow.sdk.exceptions import AirflowFailException
    task = C360SparkSubmitOperator(task_id="task", run_date="2026-10-01", openlineage_inject_parent_job_info=False,
                                   **json.loads(sys.argv[2]))
    try:
        task.execute({})
    except AirflowFailException as exc:
        print("RESULT " + json.dumps(str(exc)))
""")


def _submit(tmp_path: Path, **task) -> str:
    """Run one C360SparkSubmitOperator (a real spark-submit) in a child process; the AirflowFailException's text."""
    environ = {"C360__LAKEHOUSE__ROOT": str(tmp_path / "lakehouse"), "C360__LAKEHOUSE__QUALITY": str(tmp_path / "q"),
               "C360__LINEAGE__ENABLED": "false", "C360__ORCHESTRATION__AIRFLOW_HOME": str(tmp_path / "airflow"),
               "C360__SPARK__MASTER": "local[1]", "C360__SPARK__DRIVER_MEMORY": "1g",
               "C360__SPARK__LOG_LEVEL": "ERROR"}
    cfg = load_config(environ=environ)
    env = orchestration.airflow_env(cfg, {**_clean_environ(), **environ})
    proc = subprocess.run([sys.executable, "-c", _SUBMIT, str(orchestration.DAGS_FOLDER), json.dumps(task)], env=env,
                          capture_output=True, text=True, timeout=600)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, (proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(line[len("RESULT "):])


def test_a_user_error_in_a_spark_submit_job_fails_its_task_without_retry(tmp_path):
    # Only the job sees the bad key (env_vars): it fails at start-up with a user error, exit 3.
    message = _submit(tmp_path, job="publish_gold", env_vars={"C360__NOPE__X": "1"})
    # spark-submit (client mode) exits with the driver's own code, which the task reads.
    assert message.startswith("c360_publish_gold failed with exit code 3, not retried:\n"), message
    report = message.split("\n", 1)[1]
    assert report.startswith("unknown config key 'nope' in environment variables C360__*") and "\n" not in report


@pytest.mark.slow
def test_a_failed_quality_gate_in_a_spark_submit_job_fails_its_task_with_the_summary(tmp_path):
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    from deltalake import write_deltalake

    from c360.catalog import load_catalog

    # silver.accounts holding one account twice, as a manual fix might leave it.
    spec = load_catalog(load_config()).table("silver.accounts")
    row = {"source_system": "cards", "account_id": "DUP-1", "source_customer_id": "C1", "product_type": "credit_card",
           "currency": "GBP", "opened_date": dt.date(2020, 1, 1), "closed_date": None, "status": "active",
           "credit_limit": Decimal("10.00"), "card_number_hash": "e" * 64,
           "source_updated_at": dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc), "record_hash": "a" * 64}
    types = {"string": pa.string(), "date": pa.date32(), "decimal(18,2)": pa.decimal128(18, 2),
             "timestamp": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(name, types[kind]) for name, kind in spec.columns.items()])
    write_deltalake(str(tmp_path / "lakehouse" / "silver" / "accounts"), pa.Table.from_pylist([row, row], schema))
    message = _submit(tmp_path, job="quality_check", job_args=["--table", "silver.accounts"])
    assert message.startswith("c360_quality_check failed with exit code 4, not retried:\nquality silver.accounts"), \
        message
    assert "CRITICAL expect_compound_columns_to_be_unique [source_system, account_id]" in message


def test_table_uri_is_the_delta_location():
    cfg = load_config(environ={"C360__LAKEHOUSE__ROOT": "/data/lh"})
    assert orchestration.table_uri(cfg, "gold.customer_360") == "file:///data/lh/gold/customer_360"
    cluster = load_config(env="cluster", environ={})
    assert orchestration.table_uri(cluster, "gold.customer_360") == "s3a://bank-c360-lakehouse/prod/gold/customer_360"


def test_landing_status_and_demo_generation(tmp_path):
    environ = {"C360__LAKEHOUSE__LANDING": str(tmp_path / "landing"), "C360__LAKEHOUSE__TRUTH": str(tmp_path / "truth"),
               "C360__DATAGEN__CUSTOMERS": "40", "C360__DATAGEN__DAYS": "2"}
    waiting = load_config(environ={**environ, "C360__ORCHESTRATION__DEMO": "false"})
    day = waiting.datagen.start_date
    present, missing = orchestration.landing_status(waiting, day)
    assert present == [] and len(missing) == 14
    assert orchestration.generate_or_land(waiting, day) is False
    demo = load_config(environ={**environ, "C360__ORCHESTRATION__DEMO": "true"})
    assert orchestration.generate_or_land(demo, day) is True
    assert orchestration.landing_status(demo, day)[1] == []
    assert orchestration.generate_or_land(waiting, day + dt.timedelta(days=1)) is True
    with pytest.raises(ValueError, match="covers"):
        orchestration.generate_or_land(demo, day + dt.timedelta(days=5))


def test_lineage_graph_follows_spark_events_to_upstream_tables_and_airflow_tasks(tmp_path):
    cfg = load_config(environ={"C360__LAKEHOUSE__ROOT": str(tmp_path / "lh"), "C360__LAKEHOUSE__LANDING": str(tmp_path / "ld"),
                               "C360__LINEAGE__EVENTS": str(tmp_path / "ol")})
    root, landing = tmp_path / "lh", tmp_path / "ld"

    def event(kind, job, run_id, parent, parent_run, inputs=(), outputs=()):
        return {"eventType": kind, "eventTime": "2026-10-02T02:00:00Z", "job": {"name": job},
                "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.53.0/integration/spark",
                "run": {"runId": run_id, "facets": {"parent": {"job": {"name": parent}, "run": {"runId": parent_run}}}},
                "inputs": [{"namespace": "file", "name": str(p)} for p in inputs],
                "outputs": [{"namespace": "file", "name": str(p)} for p in outputs]}

    events = [
        # Each Spark application's own event names the Airflow task that launched it...
        event("START", "c360_bronze_ingest", "app-1", "c360_daily.bronze.ingest", "task-1"),
        event("START", "c360_silver_conform", "app-2", "c360_daily.silver.conform", "task-2"),
        # ... and its actions name the application as their parent.
        event("COMPLETE", "c360_bronze_ingest.write", "a1", "c360_bronze_ingest", "app-1",
              [landing / "core_banking/accounts/date=2026-10-01/accounts.csv"], [root / "bronze/core_banking_accounts"]),
        event("COMPLETE", "c360_silver_conform.merge", "a2", "c360_silver_conform", "app-2",
              [root / "bronze/core_banking_accounts", root / "silver/accounts"], [root / "silver/accounts"]),
        event("START", "c360_silver_conform.merge", "a2", "c360_silver_conform", "app-2", [], [root / "silver/x"]),
    ]
    (tmp_path / "ol").mkdir()
    (tmp_path / "ol" / "spark.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{not json\n")
    inputs, writers = lineage.build_graph(lineage.read_events(cfg), lineage.Catalogue.of(cfg))
    assert lineage.upstream("silver.accounts", inputs) == [("bronze.core_banking_accounts", 1, "seen"),
                                                           ("landing:core_banking/accounts", 2, "seen")]
    edges = lineage.with_declared_sources(inputs, cfg)
    assert edges["silver.accounts"] == {"bronze.core_banking_accounts": "seen, declared", "bronze.cards_accounts": "declared"}
    (job,) = writers["silver.accounts"].values()
    assert (job.job, job.parent, job.runs) == ("c360_silver_conform", "c360_daily.silver.conform", {"app-2"})
    assert "silver.x" not in writers


def test_rows_of_commit_counts_what_a_write_changed():
    assert lineage.rows_of_commit({"operation": "MERGE", "operationMetrics": {
        "numTargetRowsInserted": "3", "numTargetRowsUpdated": "2", "numTargetRowsDeleted": "1", "numOutputRows": "0"}}) == 6
    assert lineage.rows_of_commit({"operation": "WRITE", "operationMetrics": {"numOutputRows": "7"}}) == 7
    assert lineage.rows_of_commit({"operation": "RESTORE", "operationMetrics": {"numRestoredFiles": "4"}}) == 0
    assert lineage.commit_run({"userMetadata": '{"run_id": "r1", "job": "j"}'}) == {"run_id": "r1", "job": "j"}
    assert lineage.commit_run({"userMetadata": "not json"}) == {}
