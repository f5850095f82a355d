"""
### c360_maintenance: history checks, OPTIMIZE and VACUUM of every table, after each gold publication

Scheduled on the `gold.customer_360` Asset, so it runs when c360_daily has published, never
while a daily run is writing (compaction racing a MERGE would make one of them retry).

* **history.check**: every recent commit of every table carries run metadata (job, run id), and
  each table's log and file retention still covers its audit retention; a finding fails the run
  before anything is vacuumed.
* **compact.optimize**: bin-packs tables (and partitions) with many small files; no data changes.
* **compact.vacuum**: removes files no longer referenced, keeping every file a time-travel query
  needs within `maintenance.vacuum_retention_days` and never less than the table's own
  `retention_days` (the audit retention) from conf/tables.yaml.
"""

from __future__ import annotations

import datetime as dt

from _common import CFG, TAGS, C360SparkSubmitOperator, default_args, table_asset
from airflow.sdk import DAG, TaskGroup, chain

from c360 import orchestration

PUBLISHED = "gold.customer_360"
# An Asset-triggered run has no logical date: its run date is when it was triggered.
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"

with DAG(
    dag_id=orchestration.MAINTENANCE_DAG,
    description="Delta maintenance: history checks, OPTIMIZE, VACUUM (retention from conf)",
    doc_md=__doc__,
    schedule=[table_asset(PUBLISHED)],
    start_date=dt.datetime.combine(CFG.orchestration.start_date, dt.time(), dt.timezone.utc),
    # Asset-triggered: there are no missed intervals to catch up, each publication is one run.
    catchup=False,
    max_active_runs=1,
    default_args=default_args(CFG),
    tags=[*TAGS, "maintenance"],
    on_success_callback=orchestration.on_dag_success,
    on_failure_callback=orchestration.on_dag_failure,
) as dag:
    with TaskGroup("history", tooltip="audit checks on Delta history"):
        history = C360SparkSubmitOperator(task_id="check", job="maintenance", run_date=RUN_DATE,
                                          job_args=["--step", "history"])

    with TaskGroup("compact", tooltip="OPTIMIZE then VACUUM"):
        optimize = C360SparkSubmitOperator(task_id="optimize", job="maintenance", run_date=RUN_DATE,
                                           job_args=["--step", "optimize"])
        vacuum = C360SparkSubmitOperator(task_id="vacuum", job="maintenance", run_date=RUN_DATE,
                                         job_args=["--step", "vacuum"])

    chain(history, optimize, vacuum)
