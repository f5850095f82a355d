"""
### c360_daily: landing -> bronze -> silver -> quality -> identity -> gold -> features -> scores, one business date per run

The logical date (`ds`) is the business date whose source exports the run processes; every
Spark job receives it as `--date` and the DAG run id as `--run-id`, which lands in every Delta
commit's metadata. Each layer is a task group; each Spark task is one `spark-submit` whose
master comes from the `spark_default` connection (derived from conf when Airflow has none).

* **land.generate_or_land**: demo mode generates the synthetic bank; otherwise waits for every feed's export.
* **bronze.ingest**: landing files -> bronze tables, bad records -> `bronze.quarantine`.
* **silver.conform**: typed, standardised, de-duplicated silver; customers as SCD2.
* **quality.check**: conformed silver re-validated as a whole (Great Expectations) before identity reads it.
* **identity.resolve**: Splink links source records to stable `customer_id`s (`silver.customer_xref`);
  trigger with `{"full_relink": true}` to re-cluster every record.
* **gold.publish**: `gold.customer_360`; downstream DAGs are scheduled on its Asset.
* **features.build**: `features.customer_daily` as of the date (point in time; conf/features.yaml).
* **scores.any_champion** / **scores.score**: each enabled model's champion (MLflow alias) scores the
  date's features into `gold.scores` with reasons; skipped while no model has a usable champion
  (train them with the c360_models DAG or `c360 train`).

Reruns are safe: every write is keyed, so clearing any task (or the run) and running it again
for the same date leaves the tables as they were. A failed quality gate fails its task at once
(no retries), shows the GX summary in the log, and keeps the previous table version current.
Every finished task try is appended to `ops.run_log`.
"""

from __future__ import annotations

import datetime as dt

from _common import CFG, TAGS, C360SparkSubmitOperator, default_args
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, chain, task

from c360 import orchestration
from c360.catalog import load_catalog
from c360.config import load_config

CATALOG = load_catalog(CFG)
ORCH = CFG.orchestration


def _tables(layer: str, produced_from: str | None = None) -> list[str]:
    """Catalog tables of `layer`, optionally only those built from tables of layer `produced_from`."""
    return sorted(n for n, t in CATALOG.tables.items() if t.layer == layer and (
        produced_from is None or (t.sources and all(s.startswith(f"{produced_from}.") for s in t.sources))))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


SILVER_CONFORMED = _tables("silver", produced_from="bronze")
SILVER_IDENTITY = sorted(set(_tables("silver")) - set(SILVER_CONFORMED))

with DAG(
    dag_id=orchestration.DAILY_DAG,
    description="Daily Customer 360: land, bronze, silver, quality, identity, gold",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(ORCH.schedule, timezone="UTC"),
    start_date=_midnight(CFG.datagen.start_date if ORCH.demo else ORCH.start_date),
    # The demo bank has exports for its few dates only; a scheduler must not wait for more.
    end_date=_midnight(CFG.datagen.start_date + dt.timedelta(days=CFG.datagen.days - 1)) if ORCH.demo else None,
    # conf explains the choice: missed business dates must run, in order, one at a time.
    catchup=ORCH.catchup,
    max_active_runs=ORCH.max_active_runs,
    default_args={**default_args(CFG), "depends_on_past": True},
    params={"full_relink": Param(False, type="boolean", description="identity: re-cluster every record")},
    tags=[*TAGS, "daily", "lineage"],
    on_success_callback=orchestration.on_dag_success,
    on_failure_callback=orchestration.on_dag_failure,
) as dag:
    with TaskGroup("land", tooltip="the day's source exports"):

        @task.sensor(task_id="generate_or_land", poke_interval=ORCH.landing_poke_seconds,
                     timeout=ORCH.landing_timeout_hours * 3600, mode="reschedule")
        def generate_or_land(ds: str | None = None) -> bool:
            """Demo: generate the bank if missing; otherwise done once every feed's export has landed."""
            return orchestration.generate_or_land(load_config(), dt.date.fromisoformat(ds))

        land = generate_or_land()

    with TaskGroup("bronze", tooltip="raw records with ingest metadata"):
        ingest = C360SparkSubmitOperator(task_id="ingest", job="bronze_ingest", tables=_tables("bronze"))

    with TaskGroup("silver", tooltip="typed, conformed, SCD2"):
        conform = C360SparkSubmitOperator(task_id="conform", job="silver_conform", tables=SILVER_CONFORMED)

    with TaskGroup("quality", tooltip="conformed silver validated as a whole"):
        check = C360SparkSubmitOperator(task_id="check", job="quality_check",
                                         job_args=[arg for t in SILVER_CONFORMED for arg in ("--table", t)])

    with TaskGroup("identity", tooltip="source records -> customer_id (Splink)"):
        resolve = C360SparkSubmitOperator(
            task_id="resolve", job="resolve_identity", tables=SILVER_IDENTITY,
            job_args=["{{ '--full-relink' if params.full_relink else '' }}"])

    with TaskGroup("gold", tooltip="published business tables"):
        publish = C360SparkSubmitOperator(task_id="publish", job="publish_gold", tables=["gold.customer_360"])

    with TaskGroup("features", tooltip="point-in-time features of the date"):
        features = C360SparkSubmitOperator(task_id="build", job="build_features", tables=["features.customer_daily"])

    with TaskGroup("scores", tooltip="champions score the date, with reasons"):

        @task.short_circuit(task_id="any_champion")
        def any_champion() -> bool:
            """Go on to scoring only when some model has a champion that is not switched off."""
            from c360 import modeling

            return bool(modeling.scorable(load_config()))

        score = C360SparkSubmitOperator(task_id="score", job="score_models", tables=["gold.scores"])
        champions = any_champion()

    chain(land, ingest, conform, check, resolve, publish, features, champions, score)
