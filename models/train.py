"""Train every candidate of a spec, log each to MLflow, register the best and put it through the gate."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from models.card import CardFacts, render_html, render_markdown
from models.data import DatasetRef
from models.estimators import TRUSTED_TYPES, build_pipeline
from models.evaluate import Evaluation, evaluate, flat_metrics, metric_value
from models.gate import GateDecision, decide
from models.plots import reliability_figure, shap_summary_figure
from models.registry import AuditSink, ModelRegistry, experiment_name, trusting_own_artifacts
from models.scoring import contributions, predict_scores
from models.spec import ModelSpec

log = logging.getLogger("c360.models")
REFERENCE_FILE = "reference.parquet"
REFERENCE_ROWS = 5000
REFERENCE_SCORE = "__score__"
_SHAP_SAMPLE = 2000
_REQUIREMENTS = ("mlflow", "scikit-learn", "lightgbm", "pandas", "numpy", "skops")


@dataclass(frozen=True)
class Candidate:
    """One trained candidate: its run, fitted pipeline, logged model and holdout evaluation."""

    algorithm: str
    run_id: str
    model: object
    model_uri: str
    model_id: str | None
    evaluation: Evaluation


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run produced and what the gate decided."""

    model: str
    version: str
    algorithm: str
    run_ids: dict[str, str]
    metrics: dict[str, dict[str, float]]
    promoted: bool
    reasons: list[str]
    champion_version: str | None
    previous_champion: str | None
    card_uri: str

    @property
    def card_path(self) -> str | None:
        """Local path of the card HTML when the artifact store is the local file system."""
        parsed = urlparse(self.card_uri)
        return unquote(parsed.path) if parsed.scheme == "file" else None


def _model_input(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The raw feature columns as the model's signature describes them: floats and strings."""
    columns = {f: (frame[f].astype("object").where(frame[f].notna(), None) if f in spec.categorical
                   else pd.to_numeric(frame[f]).astype("float64")) for f in spec.features}
    return pd.DataFrame(columns, index=frame.index)


def _requirements() -> list[str]:
    # Pinned from the running environment: MLflow's own inference would re-import the model in a subprocess.
    return [f"{name}=={metadata.version(name)}" for name in _REQUIREMENTS]


def _log_inputs(inputs: list[DatasetRef]) -> None:
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    for ref in inputs:
        source = DeltaDatasetSource(path=ref.uri, delta_table_version=ref.version)
        digest = hashlib.sha256(ref.tag.encode("utf-8")).hexdigest()[:16]
        mlflow.log_input(MetaDataset(source, name=ref.name, digest=digest), context="training",
                         tags={"c360.version": str(ref.version), "c360.rows": str(ref.rows)})


def _params(spec: ModelSpec, algorithm: str, train: pd.DataFrame, holdout: pd.DataFrame,
            train_dates: list, holdout_dates: list) -> dict[str, str]:
    params = {f"{algorithm}.{k}": v for k, v in spec.algorithms[algorithm].items()}
    params.update({
        "algorithm": algorithm, "label": spec.label.column, "features": ",".join(spec.features),
        "categorical": ",".join(spec.categorical), "train_rows": len(train), "holdout_rows": len(holdout),
        "train_as_of": f"{train_dates[0]}..{train_dates[-1]}", "holdout_as_of": ",".join(map(str, holdout_dates)),
        "gate.metric": spec.gate.metric, "gate.min_value": spec.gate.min_value, "gate.margin": spec.gate.margin,
        "gate.threshold": spec.gate.threshold,
    })
    return {k: str(v) for k, v in params.items()}


def _train_candidate(spec: ModelSpec, algorithm: str, train: pd.DataFrame, holdout: pd.DataFrame, *,
                     experiment_id: str, inputs: list[DatasetRef], tags: dict[str, str],
                     dates: tuple[list, list]) -> Candidate:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    x_train, x_holdout = _model_input(spec, train), _model_input(spec, holdout)
    run_tags = {**tags, "c360.model": spec.name, "c360.algorithm": algorithm, "c360.purpose": spec.purpose,
                **{f"c360.input.{ref.name}": ref.tag for ref in inputs}}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{algorithm}", tags=run_tags) as run:
        model = build_pipeline(algorithm, spec.features, spec.categorical, spec.algorithms[algorithm])
        model.fit(x_train, train[spec.label.column].astype(int).to_numpy())
        score = predict_scores(model, x_holdout)
        evaluation = evaluate(spec, holdout, score)
        mlflow.log_params(_params(spec, algorithm, train, holdout, *dates))
        mlflow.log_metrics(flat_metrics(evaluation))
        mlflow.log_text(evaluation.lift.to_csv(index=False), "evaluation/lift_by_decile.csv")
        mlflow.log_text(evaluation.segments.to_csv(index=False), "evaluation/segments.csv")
        mlflow.log_text(evaluation.fairness.to_csv(index=False), "evaluation/fairness.csv")
        y = holdout[spec.label.column].astype(int).to_numpy()
        mlflow.log_figure(reliability_figure(y, score, f"{spec.name} {algorithm}: reliability"),
                          "evaluation/reliability.png")
        sample = x_holdout.head(_SHAP_SAMPLE)
        contrib, _ = contributions(model, sample)
        mlflow.log_figure(shap_summary_figure(contrib, sample, f"{spec.name} {algorithm}: SHAP summary"),
                          "evaluation/shap_summary.png")
        _log_inputs(inputs)
        # The drift reference: what the model was trained on (a sample) and what it scores there; scoring
        # runs compare their features and scores with it (PSI).
        reference = x_train.sample(n=min(len(x_train), REFERENCE_ROWS), random_state=0)
        reference = reference.assign(**{REFERENCE_SCORE: predict_scores(model, reference)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / REFERENCE_FILE
            reference.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), "monitoring")
        example = x_holdout.head(5)
        signature = infer_signature(example, model.predict_proba(example))
        # MLflow checks the input example by loading the model it has just written; that artifact is ours.
        with trusting_own_artifacts():
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=example, serialization_format="skops",
                skops_trusted_types=TRUSTED_TYPES, pip_requirements=_requirements(), pyfunc_predict_fn="predict_proba")
    log.info("models: %s %s run %s %s=%.4f", spec.name, algorithm, run.info.run_id, spec.gate.metric,
             evaluation.metrics[spec.gate.metric])
    return Candidate(algorithm, run.info.run_id, model, info.model_uri, getattr(info, "model_id", None), evaluation)


def _best(spec: ModelSpec, candidates: list[Candidate]) -> Candidate:
    def key(c: Candidate) -> float:
        value = c.evaluation.metrics[spec.gate.metric]
        return -np.inf if np.isnan(value) else value

    # max() keeps the first of equals, so spec order breaks ties.
    return max(candidates, key=key)


def _champion_metric(spec: ModelSpec, registry: ModelRegistry, holdout: pd.DataFrame,
                     new_version: str) -> tuple[str | None, float | None, str | None]:
    """(champion version, its metric on this holdout, a note when it could not be compared)."""
    champion = registry.champion(spec.name)
    if champion is None or champion.version == new_version:
        return None, None, None
    loaded = registry.load_version(spec.name, champion.version)
    needed = list(loaded.model.named_steps["frame"].features)
    missing = [f for f in needed if f not in holdout.columns]
    if missing:
        note = (f"champion v{champion.version} needs features the frame lacks ({', '.join(missing)}): "
                "the challenger wins the comparison by default")
        return champion.version, None, note
    score = predict_scores(loaded.model, holdout)
    value = metric_value(spec.gate.metric, holdout[spec.label.column].astype(int).to_numpy(), score)
    return champion.version, value, None


def _gate_tags(decision: GateDecision) -> dict[str, str]:
    return {"gate.decision": "promoted" if decision.promote else "refused",
            "gate.reason": "; ".join(decision.reasons)[:4900],
            "gate.champion_version": decision.champion_version or "",
            "gate.challenger_metric": f"{decision.challenger_metric:.6f}",
            "gate.champion_metric": "" if decision.champion_metric is None else f"{decision.champion_metric:.6f}"}


def train_and_gate(spec: ModelSpec, frame: pd.DataFrame, *, registry: ModelRegistry, inputs: list[DatasetRef],
                   tags: dict[str, str] | None = None, actor: str = "train_and_gate", audit: AuditSink | None = None,
                   notes: list[str] | None = None) -> TrainOutcome:
    """Train all candidates on the time split, register the best as `challenger`, promote it if it clears the gate."""
    spec.validate_frame(frame)
    train_dates, holdout_dates = spec.split_dates(frame)
    train = frame[frame[spec.as_of].isin(train_dates)]
    holdout = frame[frame[spec.as_of].isin(holdout_dates)]
    registry.activate()
    experiment_id = registry.experiment_id(experiment_name(spec.name))
    candidates = [_train_candidate(spec, algorithm, train, holdout, experiment_id=experiment_id, inputs=inputs,
                                   tags=dict(tags or {}), dates=(train_dates, holdout_dates))
                  for algorithm in spec.algorithms]
    best = _best(spec, candidates)
    registry.ensure_model(spec.name, description=spec.description, purpose=spec.purpose, owner=spec.owner)
    version = registry.register(spec.name, model_uri=best.model_uri, run_id=best.run_id, model_id=best.model_id,
                                description=f"{best.algorithm} trained on {len(train)} rows to {train_dates[-1]}",
                                tags={"c360.algorithm": best.algorithm, "c360.purpose": spec.purpose,
                                      **(tags or {})}).version
    champion_version, champion_value, note = _champion_metric(spec, registry, holdout, version)
    decision = decide(spec.gate, best.evaluation, champion_version=champion_version,
                      champion_metric=champion_value, champion_note=note)
    registry.tag_version(spec.name, version, _gate_tags(decision))
    if decision.promote:
        registry.promote(spec.name, version, reason="; ".join(decision.reasons), actor=actor, audit=audit)
    else:
        log.warning("models: %s v%s refused: %s", spec.name, version, "; ".join(decision.reasons))
    champion_after = registry.champion(spec.name)
    facts = CardFacts(spec=spec, version=version, algorithm=best.algorithm, run_id=best.run_id, inputs=tuple(inputs),
                      train_dates=tuple(map(str, train_dates)), holdout_dates=tuple(map(str, holdout_dates)),
                      train_rows=len(train), holdout_rows=len(holdout), evaluation=best.evaluation,
                      candidates={c.algorithm: c.evaluation.metrics for c in candidates}, decision=decision,
                      champion_after=champion_after.version if champion_after else None, notes=tuple(notes or ()))
    text = render_markdown(facts)
    registry.client.log_text(best.run_id, text, "model_card.md")
    registry.client.log_text(best.run_id, render_html(text, f"{spec.name} v{version}"), "model_card.html")
    card_uri = f"{registry.client.get_run(best.run_id).info.artifact_uri.rstrip('/')}/model_card.html"
    return TrainOutcome(
        model=spec.name, version=version, algorithm=best.algorithm, run_ids={c.algorithm: c.run_id for c in candidates},
        metrics={c.algorithm: flat_metrics(c.evaluation) for c in candidates}, promoted=decision.promote,
        reasons=list(decision.reasons), champion_version=champion_after.version if champion_after else None,
        previous_champion=champion_version, card_uri=card_uri)
