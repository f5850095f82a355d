"""Models on the lakehouse: train from Delta with consent and purpose, score into gold.scores, kill switch, --spec.

Real Spark, Delta, GX and an MLflow SQLite store; the feature store is a small synthetic one written
with the catalog's schema, large enough for a learnable churn signal.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from c360 import cli, features, io, modeling, pipeline, rows, scoring
from c360.errors import UserError
from tests.conftest import make_config

AS_OF = [dt.date(2026, 3, 1) + dt.timedelta(days=14 * k) for k in range(9)]
CUSTOMERS = 400


def _feature_rows(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """features.customer_daily and features.churn_labels rows: churn follows falling deposits and complaints."""
    feats, labels = [], []
    for day in AS_OF:
        for i in range(CUSTOMERS):
            falling = rng.random() < 0.2
            change = float(rng.normal(-0.5 if falling else 0.02, 0.15))
            complaints = int(rng.poisson(0.8 if falling else 0.1))
            consent = ["credit_risk", "fraud_prevention", "service"] + (["retention"] if i % 7 else [])
            age = int(rng.integers(18, 90))
            feats.append({
                "customer_id": f"CUS{i:05d}", "as_of_date": day, "age_years": age,
                "age_band": "18-29" if age < 30 else "30-44" if age < 45 else "45-59" if age < 60 else "60+",
                "region": ["Leeds", "York", None][i % 3], "tenure_days": int(rng.integers(30, 9000)),
                "tenure_band": "3-10y", "products_open": 2, "everyday_open": 1, "lending_open": 0, "cards_open": 1,
                "product_holding": ["credit_card+current", "current+savings"][i % 2], "accounts_closed_90d": 0,
                "balance_deposits": float(rng.gamma(2.0, 3000.0)), "balance_change_30d": change / 2,
                "balance_change_90d": None if i == 0 else change, "complaints_90d": complaints,
                "interactions_90d": int(rng.poisson(0.5)), "offers_accepted_365d": int(rng.poisson(0.2)),
                "txn_count_30d": int(rng.poisson(12)), "txn_amount_30d": float(rng.gamma(2.0, 200.0)),
                "logins_30d": int(rng.poisson(10)), "purposes_allowed": consent, "built_run_id": "test"})
            churned = int(rng.random() < 1 / (1 + np.exp(-(-3.2 + 3.0 * falling + 0.6 * complaints))))
            labels.append({"customer_id": f"CUS{i:05d}", "as_of_date": day, "horizon_days": 60, "churned": churned,
                           "churned_on": day + dt.timedelta(days=30) if churned else None,
                           "observed_on": AS_OF[-1] + dt.timedelta(days=60), "built_run_id": "test"})
    return feats, labels


@pytest.fixture(scope="module")
def store(tmp_path_factory, monkeypatch_module):
    """A lakehouse with a synthetic feature store and labels, its MLflow store inside; the churn champion trained."""
    root = tmp_path_factory.mktemp("modeling")
    cfg = make_config(root)
    for key, value in {"C360__LAKEHOUSE__ROOT": cfg.lakehouse.root, "C360__LAKEHOUSE__QUALITY": cfg.lakehouse.quality,
                       "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        monkeypatch_module.setenv(key, value)
    feats, labels = _feature_rows(np.random.default_rng(11))
    rows.append(cfg, features.CUSTOMER_DAILY, feats, job="test", run_id="setup")
    rows.append(cfg, features.CHURN_LABELS, labels, job="test", run_id="setup")
    outcome = modeling.train(cfg, modeling.load_spec(cfg, "churn"), "train-1")
    return cfg, outcome


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _score(spark, cfg, day: dt.date, run_id: str) -> dict[str, str]:
    return scoring.score(spark, cfg, pipeline.new_run(cfg, scoring.JOB, day, run_id), ["churn"])


def test_the_first_champion_is_trained_on_consented_rows_and_names_its_data(store):
    cfg, outcome = store
    registry = modeling.model_registry(cfg)
    assert outcome.promoted and registry.champion("churn").version == outcome.version
    assert outcome.metrics["lightgbm"]["roc_auc"] > 0.7 and outcome.metrics["logistic"]["roc_auc"] > 0.7
    run = registry.client.get_run(outcome.run_ids[outcome.algorithm])
    tags = run.data.tags
    assert tags["c360.input.features.customer_daily"].endswith("@v0")
    assert tags["c360.input.features.churn_labels"].endswith("@v0")
    assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"features.customer_daily", "features.churn_labels"}
    card = open(outcome.card_path, encoding="utf-8").read()
    assert "no consent for retention" in card and "features.churn_labels" in card
    [event] = [e for e in _events(cfg) if e["action"] == "promote"]
    assert (event["model"], event["version"], event["run_id"]) == ("churn", outcome.version, "train-1")


def _events(cfg) -> list[dict]:
    from deltalake import DeltaTable

    return DeltaTable(io.location(cfg, modeling.EVENTS)).to_pandas().to_dict("records")


def test_scores_hold_reasons_only_for_consented_customers_and_a_rerun_changes_nothing(spark, store):
    cfg, outcome = store
    day = AS_OF[-1]
    first = _score(spark, cfg, day, "score-1")
    assert "scored" in first["churn"] and "unchanged" not in first["churn"]
    version = io.current_version(spark, cfg, scoring.SCORES)
    scored = io.read(spark, cfg, scoring.SCORES).filter(f"as_of_date = DATE'{day}'").toPandas()
    consented = {f"CUS{i:05d}" for i in range(CUSTOMERS) if i % 7}
    assert set(scored["entity_id"]) == consented, "customers without retention consent are never scored"
    assert set(scored["model_version"]) == {outcome.version}
    assert scored["reason_1"].notna().mean() > 0.9 and (scored["reason_1_contribution"].dropna() > 0).all()
    top = scored.sort_values("score", ascending=False).iloc[0]
    assert top["decile"] == 1 and top["band"] == "high" and "raises the churn score" in top["reason_1_text"]
    drift = io.read(spark, cfg, scoring.MONITORING).filter(f"as_of_date = DATE'{day}'").toPandas()
    assert set(drift["feature"]) == {*modeling.load_spec(cfg, "churn").features, "score"}
    # The scored date is drawn like the training dates: no feature drifts (PSI well under the warning level).
    assert (drift["psi"] >= 0).all() and not drift["warning"].any() and drift["psi"].max() < 0.1
    monitored = io.current_version(spark, cfg, scoring.MONITORING)
    again = _score(spark, cfg, day, "score-2")
    assert again["churn"].endswith("unchanged") and io.current_version(spark, cfg, scoring.SCORES) == version
    assert io.current_version(spark, cfg, scoring.MONITORING) == monitored


def test_the_kill_switch_stops_scoring_and_is_audited(spark, store):
    cfg, _ = store
    registry = modeling.model_registry(cfg)
    audit = modeling.audit_sink(cfg, "switch")
    registry.disable("churn", reason="complaint about offers", actor="risk-officer", audit=audit)
    try:
        assert not modeling.scorable(cfg)
        before = io.current_version(spark, cfg, scoring.SCORES)
        outcome = _score(spark, cfg, AS_OF[-2], "score-3")
        assert outcome["churn"].startswith("skipped") and "complaint about offers" in outcome["churn"]
        assert io.current_version(spark, cfg, scoring.SCORES) == before
    finally:
        registry.enable("churn", actor="risk-officer", reason="reviewed", audit=audit)
    actions = [(e["action"], e["actor"], e["reason"])
               for e in sorted(_events(cfg), key=lambda e: e["at"]) if e["run_id"] == "switch"]
    assert actions == [("disable", "risk-officer", "complaint about offers"), ("enable", "risk-officer", "reviewed")]
    assert modeling.scorable(cfg) == ["churn"]


def test_a_feature_that_does_not_allow_the_purpose_is_refused(store, tmp_path):
    cfg, _ = store
    spec = modeling.load_spec(cfg, "churn")
    import dataclasses

    fraud = dataclasses.replace(spec, purpose="fraud_prevention")
    with pytest.raises(UserError, match="purpose 'fraud_prevention' may not use feature 'age_years'"):
        modeling.training_frame(cfg, fraud)


def test_train_spec_trains_on_a_delta_table_outside_the_bank(store, tmp_path, capsys):
    import pandas as pd
    from deltalake import write_deltalake

    cfg, _ = store
    rng = np.random.default_rng(5)
    n = 900
    x = rng.normal(size=n)
    frame = pd.DataFrame({"shop_id": [f"S{i}" for i in range(n)], "week": np.repeat(pd.date_range("2026-01-05", periods=3,
                                                                                                freq="7D").date, n // 3),
                          "footfall": x, "rain_mm": rng.gamma(2.0, 2.0, n), "kind": rng.choice(["mall", "street"], n),
                          "closed_next_month": (rng.random(n) < 1 / (1 + np.exp(-(2 * x - 1)))).astype(int)})
    table = tmp_path / "shops"
    write_deltalake(str(table), frame)
    spec = tmp_path / "shops.yaml"
    spec.write_text(f"""
name: shop_closure
description: Shops that close within a month.
purpose: service
owner: retail-analytics
entity: shop_id
as_of: week
feature_table: {table}
label: {{column: closed_next_month, definition: the shop closed within 30 days of the week}}
features: [footfall, rain_mm]
categorical: [kind]
split: {{holdout_dates: 1}}
algorithms:
  logistic: {{C: 1.0}}
  lightgbm: {{n_estimators: 40, num_leaves: 7, min_child_samples: 10}}
gate: {{metric: roc_auc, min_value: 0.6}}
segments: [kind]
""")
    assert cli.main(["train", "--spec", str(spec), "--run-id", "spec-1"]) == 0
    out = capsys.readouterr().out
    assert "shop_closure v1" in out and "promoted to champion" in out
    registry = modeling.model_registry(cfg)
    assert registry.champion("shop_closure").version == "1"
    run = registry.client.get_run(registry.champion("shop_closure").run_id)
    assert run.data.tags[f"c360.input.{table}"] == f"{table}@v0"
    assert "consent was not checked" in open(registry.card("shop_closure"), encoding="utf-8").read()
