"""
### c360_models: feature history, then train and gate every model of conf/models.yaml

Weekly (`orchestration.models_schedule`) and on demand (trigger it after changing a spec).

* **features.history**: `features.customer_daily` for the training as-of dates (conf/features.yaml
  `history`) and `features.churn_labels` for those whose outcome window has passed.
* **train.<model>**: one task per model: the spec's candidates (logistic baseline, LightGBM) are
  trained on the point-in-time training set (consented customers only), each logged as an MLflow
  run with metrics, segments, fairness, SHAP summary, signature, model card and the exact Delta
  versions it read; the best is registered as `challenger` and promoted to `champion` only when it
  beats the current champion on the same holdout by the spec's margin and passes its floors. A
  refused challenger is not a failure: the reason is in the log, the version's tags and the card.
  Too little labelled data for a model yet skips its task with the reason (the others still train).

c360_daily's scoring uses whatever `champion` says when it runs.
"""

from __future__ import annotations

import datetime as dt

from _common import CFG, TAGS, C360SparkSubmitOperator, default_args
from airflow.sdk import DAG, TaskGroup, chain, task

from c360 import modeling, orchestration
from c360.config import load_config

RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"

with DAG(
    dag_id=orchestration.MODELS_DAG,
    description="Feature history, then train and gate the churn, propensity and fraud models (MLflow)",
    doc_md=__doc__,
    schedule=CFG.orchestration.models_schedule,
    start_date=dt.datetime.combine(CFG.orchestration.start_date, dt.time(), dt.timezone.utc),
    # A missed week needs no catch-up: the next run trains on all history up to its date.
    catchup=False,
    max_active_runs=1,
    default_args=default_args(CFG),
    tags=[*TAGS, "models", "mlflow"],
    on_success_callback=orchestration.on_dag_success,
    on_failure_callback=orchestration.on_dag_failure,
) as dag:
    with TaskGroup("features", tooltip="training as-of dates and labels"):
        history = C360SparkSubmitOperator(task_id="history", job="build_features", run_date=RUN_DATE,
                                          job_args=["--history"],
                                          tables=["features.customer_daily", "features.churn_labels"])

    with TaskGroup("train", tooltip="candidates, gate, registry"):
        trained = []
        for name in modeling.model_names(CFG):

            @task(task_id=name)
            def train(model: str, run_id: str | None = None) -> dict:
                """Train and gate one model; returns the registered version and the gate's decision. Too little
                labelled data yet (a young bank, a rare offer) skips the task with the reason; any other error fails it."""
                from airflow.sdk.exceptions import AirflowSkipException

                from c360 import modeling as service
                from c360.errors import InsufficientDataError

                cfg = load_config()
                try:
                    outcome = service.train(cfg, service.load_spec(cfg, model), run_id)
                except InsufficientDataError as exc:
                    raise AirflowSkipException(f"{model}: not trained: {exc}") from None
                return {"version": outcome.version, "promoted": outcome.promoted, "reasons": outcome.reasons,
                        "champion": outcome.champion_version, "card": outcome.card_uri}

            trained.append(train(name))

    chain(history, trained)
