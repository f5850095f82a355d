"""models/: specs, training and the registry gate on a real MLflow SQLite store, SHAP reasons and drift.

JVM-free: a small synthetic feature frame (3 as-of dates x 600 customers) is written to a real Delta table
with delta-rs and read back, so the runs record a real table version. The label depends on two interactions
(dormant card use; a single young product) that trees find and a linear model only approximates, so the
LightGBM candidate wins and becomes the first champion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from c360.errors import InsufficientDataError, UserError
from models.data import load_delta
from models.estimators import build_pipeline
from models.monitoring import drift_report, psi
from models.registry import ModelRegistry
from models.scoring import contributions, predict_scores, raw_margin, score_frame
from models.spec import load_spec_file, load_specs
from models.train import train_and_gate

# The example spec of conf/models.yaml, verbatim apart from indentation.
SPEC_YAML = textwrap.dedent("""\
    models:
      churn:
        description: Customers likely to leave within 90 days of the as-of date.
        purpose: retention
        entity: customer_id
        as_of: as_of_date
        feature_table: features.customer_training
        label:
          column: churned_90d
          definition: "all of the customer's accounts closed, or no customer-initiated activity, within 90 days after the as-of date"
        features: [tenure_days, products_open, balance_total, balance_change_90d, txn_count_30d, txn_amount_30d, txn_trend, logins_30d, complaints_90d, days_since_activity]
        categorical: [region]
        split: {holdout_dates: 1}
        algorithms:
          logistic: {C: 1.0}
          lightgbm: {n_estimators: 200, learning_rate: 0.05, num_leaves: 15, min_child_samples: 20}
        gate:
          metric: roc_auc
          min_value: 0.6
          margin: 0.005
          segment_floor: 0.55
          min_segment_rows: 30
          max_tpr_gap: 0.25
          max_selection_rate_gap: 0.25
          threshold: top_decile
        segments: [age_band, tenure_band, region, product_holding]
        fairness_groups: [age_band]
        drift: {psi_warning: 0.2, bins: 10}
        reasons: {top: 3}
        owner: data-science
    """)
DATES = [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)]
DESCRIPTIONS = {"txn_count_30d": "card transactions in the last 30 days"}


def make_frame(seed: int = 1, customers: int = 600) -> pd.DataFrame:
    """One row per customer per as-of date; one null balance and one null region."""
    rng = np.random.default_rng(seed)
    parts = []
    for as_of in DATES:
        n = customers
        f = pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(n)], "as_of_date": as_of})
        f["tenure_days"] = rng.integers(10, 3000, n).astype(float)
        f["products_open"] = rng.integers(1, 5, n)
        f["balance_total"] = rng.lognormal(8, 1, n)
        f["balance_change_90d"] = rng.normal(0, 500, n)
        f["txn_count_30d"] = rng.poisson(12, n)
        f["txn_amount_30d"] = f["txn_count_30d"] * rng.lognormal(3, 0.5, n)
        f["txn_trend"] = rng.normal(0, 1, n)
        f["logins_30d"] = rng.poisson(8, n)
        f["complaints_90d"] = rng.poisson(0.2, n)
        f["days_since_activity"] = rng.exponential(20, n).round()
        f["region"] = rng.choice(["north", "south", "east", "west"], n)
        f["age_band"] = rng.choice(["18-34", "35-54", "55+"], n)
        f["tenure_band"] = np.where(f["tenure_days"] < 365, "new", "established")
        f["product_holding"] = np.where(f["products_open"] > 1, "multi", "single")
        dormant = (f["txn_count_30d"] < 10) & (f["days_since_activity"] > 15)
        single_young = (f["products_open"] == 1) & (f["tenure_days"] < 900)
        logit = -2.6 + 2.8 * dormant + 2.0 * single_young + 0.6 * (f["region"] == "north")
        f["churned_90d"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        parts.append(f)
    frame = pd.concat(parts, ignore_index=True)
    frame.loc[3, "balance_total"] = np.nan
    frame.loc[5, "region"] = None
    return frame


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    """The example spec as a conf file."""
    path = tmp_path_factory.mktemp("conf") / "models.yaml"
    path.write_text(SPEC_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spec(spec_file):
    """The example spec with fewer LightGBM rounds, to keep the module quick."""
    loaded = load_specs(spec_file)["churn"]
    return dataclasses.replace(loaded, algorithms={"logistic": {"C": 1.0}, "lightgbm": {
        "n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 20}})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A registry on a fresh SQLite store, and the training frame as read back from a real Delta table."""
    from deltalake import write_deltalake

    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        # Tests make no network calls: MLflow would otherwise send usage telemetry.
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = str(root / "lakehouse" / "features" / "customer_training")
        write_deltalake(uri, make_frame().iloc[:10])
        write_deltalake(uri, make_frame(), mode="overwrite")
        frame, ref = load_delta("features.customer_training", uri)
        registry = ModelRegistry(f"sqlite:///{root}/mlflow/mlflow.db", str(root / "mlartifacts"))
        yield {"registry": registry, "frame": frame, "ref": ref, "uri": uri}


@pytest.fixture(scope="module")
def first(env, spec):
    """The first training: no champion yet, so the winner becomes champion."""
    return train_and_gate(spec, env["frame"], registry=env["registry"], inputs=[env["ref"]],
                          tags={"c360.run_id": "test-run-1", "c360.git_sha": "abc1234"},
                          notes=["Trained on synthetic data."])


@pytest.fixture(scope="module")
def refused(env, spec, first):
    """A challenger trained on shuffled labels, judged on the real holdout."""
    frame = env["frame"].copy()
    train = frame["as_of_date"] != frame["as_of_date"].max()
    frame.loc[train, "churned_90d"] = np.random.default_rng(9).permutation(frame.loc[train, "churned_90d"].to_numpy())
    ref = dataclasses.replace(env["ref"], version=env["ref"].version + 1)
    return train_and_gate(spec, frame, registry=env["registry"], inputs=[ref], tags={"c360.run_id": "test-run-2"})


def test_train_end_to_end_logs_candidates_and_registers_champion(env, spec, first):
    import mlflow.models

    registry, ref = env["registry"], env["ref"]
    assert ref.version == 1 and ref.rows == 1800
    assert set(first.run_ids) == {"logistic", "lightgbm"}
    assert first.algorithm == "lightgbm" and first.promoted and first.version == "1"
    for algorithm, run_id in first.run_ids.items():
        run = registry.client.get_run(run_id)
        metrics = run.data.metrics
        for name in ("roc_auc", "pr_auc", "brier", "lift_top_decile", "segment.age_band.18-34.roc_auc",
                     "segment.region.north.rows", "fairness.age_band.tpr_gap", "fairness.age_band.selection_rate_gap"):
            assert name in metrics, (algorithm, name)
        assert metrics["roc_auc"] == pytest.approx(first.metrics[algorithm]["roc_auc"])
        assert run.data.params["algorithm"] == algorithm
        assert run.data.tags["c360.input.features.customer_training"] == f"{env['uri']}@v1"
        assert run.data.tags["c360.git_sha"] == "abc1234"
        (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
        assert dataset.name == "features.customer_training" and dataset.source_type == "delta_table"
        assert json.loads(dataset.source) == {"path": env["uri"], "delta_table_version": 1}
        artifacts = {a.path for a in registry.client.list_artifacts(run_id, "evaluation")}
        assert {"evaluation/reliability.png", "evaluation/shap_summary.png", "evaluation/lift_by_decile.csv",
                "evaluation/segments.csv", "evaluation/fairness.csv"} <= artifacts
    assert first.metrics["lightgbm"]["roc_auc"] > first.metrics["logistic"]["roc_auc"]
    version = registry.version("churn", "1")
    assert set(version.aliases) == {"champion", "challenger"}
    assert version.run_id == first.run_ids["lightgbm"] and version.decision == "promoted"
    registry.activate()
    signature = mlflow.models.get_model_info("models:/churn/1").signature
    assert signature.inputs.input_names() == list(spec.features)
    card = Path(first.card_path)
    assert card.name == "model_card.html" and card.exists()
    html = card.read_text(encoding="utf-8")
    assert "features.customer_training" in html and "Promoted" in html and "synthetic data" in html
    assert Path(registry.card("churn")).read_text(encoding="utf-8") == html


def test_gate_refuses_worse_challenger_and_keeps_champion(env, first, refused):
    registry = env["registry"]
    assert not refused.promoted and refused.version == "2"
    assert registry.champion("churn").version == first.version
    assert registry.alias("churn", "challenger").version == "2"
    assert any("roc_auc" in r and "champion v1" in r for r in refused.reasons), refused.reasons
    tags = registry.version("churn", "2").tags
    assert tags["gate.decision"] == "refused" and tags["gate.champion_version"] == "1"
    assert float(tags["gate.champion_metric"]) > float(tags["gate.challenger_metric"])
    assert "Refused" in Path(refused.card_path).read_text(encoding="utf-8")


def test_promote_rollback_and_kill_switches_are_audited(env, first, refused):
    registry, events = env["registry"], []
    registry.promote("churn", refused.version, reason="manual override for the test", actor="alice",
                     audit=events.append)
    assert registry.champion("churn").version == "2"
    assert registry.client.get_registered_model("churn").tags["previous_champion"] == "1"
    registry.rollback("churn", reason="v2 misbehaves", actor="bob", audit=events.append)
    assert registry.champion("churn").version == "1"
    with pytest.raises(UserError, match="no earlier champion"):
        registry.rollback("churn", reason="again", actor="bob")
    assert registry.is_usable("churn", "retention")[0]
    registry.disable("churn", reason="scores drifted", actor="carol", audit=events.append)
    usable, why = registry.is_usable("churn", "retention")
    assert not usable and "scores drifted" in why and "carol" in why
    registry.enable("churn", actor="carol", audit=events.append)
    assert registry.is_usable("churn", "retention")[0]
    registry.disable_purpose("retention", reason="consent withdrawn", actor="dpo", audit=events.append)
    usable, why = registry.is_usable("churn", "retention")
    assert not usable and "consent withdrawn" in why
    registry.enable_purpose("retention", actor="dpo", audit=events.append)
    assert registry.is_usable("churn", "retention")[0]
    assert not registry.is_usable("churn", "marketing")[0]
    assert [(e["action"], e["version"], e["actor"]) for e in events] == [
        ("promote", "2", "alice"), ("rollback", "1", "bob"), ("disable", "1", "carol"), ("enable", "1", "carol"),
        ("disable_purpose", None, "dpo"), ("enable_purpose", None, "dpo")]
    assert all(set(e) == {"model", "purpose", "action", "version", "reason", "actor", "at"} for e in events)
    assert [(v.version, v.aliases, v.decision) for v in registry.versions("churn")] == [
        ("1", ("champion",), "promoted"), ("2", ("challenger",), "refused")]


def test_lightgbm_reasons_are_additive_positive_and_deterministic(env, spec, first, refused):
    loaded = env["registry"].load_champion("churn")
    assert loaded.version == "1" and type(loaded.model[-1]).__name__ == "LGBMClassifier"
    frame = env["frame"][env["frame"]["as_of_date"] == DATES[-1]]
    contrib, base = contributions(loaded.model, frame)
    assert list(contrib.columns) == list(spec.features)
    margin = raw_margin(loaded.model, frame)
    np.testing.assert_allclose(base + contrib.sum(axis=1).to_numpy(), margin, atol=1e-6, rtol=0)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), predict_scores(loaded.model, frame), atol=1e-9)
    scored = score_frame(spec, loaded, frame, descriptions=DESCRIPTIONS)
    pd.testing.assert_frame_equal(scored, score_frame(spec, loaded, frame, descriptions=DESCRIPTIONS))
    assert (scored["model_version"] == "1").all() and len(scored) == len(frame)
    assert scored["decile"].value_counts().sort_index().tolist() == [60] * 10
    assert scored.groupby("decile")["score"].min().is_monotonic_decreasing
    assert set(scored.loc[scored["decile"] <= 2, "band"]) == {"high"}
    c = scored[[f"reason_{k}_contribution" for k in (1, 2, 3)]].to_numpy()
    assert (np.nan_to_num(c, nan=np.inf) > 0).all()
    assert (np.nan_to_num(c[:, :-1], nan=-np.inf) >= np.nan_to_num(c[:, 1:], nan=-np.inf)).all()
    top = scored.iloc[int(np.argmax(scored["score"]))]
    assert top["reason_1"] in spec.features
    assert top["reason_1_text"].startswith(DESCRIPTIONS.get(top["reason_1"], top["reason_1"]) + " = ")
    assert top["reason_1_text"].endswith("raises the churn score")
    logistic = build_pipeline("logistic", spec.features, spec.categorical, {"C": 1.0})
    logistic.fit(frame[list(spec.features)], frame["churned_90d"])
    contrib, base = contributions(logistic, frame)
    np.testing.assert_allclose(base + contrib.sum(axis=1).to_numpy(), raw_margin(logistic, frame), atol=1e-6, rtol=0)


@pytest.mark.parametrize("edit, key", [
    (lambda m: m["algorithms"].update(xgboost={}), "models.churn.algorithms.xgboost"),
    (lambda m: m["algorithms"]["lightgbm"].update(leaves=3), "models.churn.algorithms.lightgbm.leaves"),
    (lambda m: m["gate"].update(metric="accuracy"), "models.churn.gate.metric"),
    (lambda m: m.update(colour="blue"), "models.churn.colour"),
    (lambda m: m.pop("purpose"), "models.churn.purpose"),
    (lambda m: m["label"].update(column=3), "models.churn.label.column"),
])
def test_spec_errors_name_the_file_and_key(tmp_path, edit, key):
    data = yaml.safe_load(SPEC_YAML)
    edit(data["models"]["churn"])
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_specs(path)
    assert str(path) in str(caught.value) and key in str(caught.value)


def test_spec_file_and_frame_validation(tmp_path, spec):
    one = {"name": "churn", **yaml.safe_load(SPEC_YAML)["models"]["churn"]}
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(one), encoding="utf-8")
    loaded = load_spec_file(path)
    assert loaded.name == "churn" and loaded.features[-1] == "region" and loaded.categorical == ("region",)
    frame = make_frame(customers=40)
    with pytest.raises(UserError, match="lacks columns txn_trend, product_holding"):
        spec.validate_frame(frame.drop(columns=["txn_trend", "product_holding"]))
    with pytest.raises(UserError, match="must be 0/1"):
        spec.validate_frame(frame.assign(churned_90d=frame["churned_90d"] * 2))
    holdout = frame["as_of_date"] == DATES[-1]
    with pytest.raises(InsufficientDataError, match="holdout side .* both classes"):
        spec.validate_frame(frame.assign(churned_90d=np.where(holdout, 0, frame["churned_90d"])))


def test_psi_and_drift_report(spec):
    rng = np.random.default_rng(3)
    expected = rng.normal(0, 1, 5000)
    assert psi(expected, expected.copy(), 10) == pytest.approx(0.0, abs=1e-9)
    assert psi(expected, rng.normal(0, 1, 5000), 10) < 0.05
    assert psi(expected, rng.normal(1, 1, 5000), 10) > spec.drift.psi_warning
    train = make_frame(customers=300)
    now = train.assign(txn_count_30d=train["txn_count_30d"] + 8)
    report = drift_report(spec, train, now, rng.uniform(size=900), rng.uniform(size=900))
    flagged = report.set_index("feature")["warning"]
    assert flagged["txn_count_30d"] and not flagged["tenure_days"] and not flagged["region"]
    assert list(report["feature"]) == [*spec.features, "score"]
