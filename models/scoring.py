"""Scores with reasons: probability, decile and band per entity, and the features that push each score up.

Contributions are SHAP values in log-odds space: LightGBM's own TreeSHAP (`pred_contrib`), and for the
logistic pipeline coefficient × (encoded value − training mean), summed over a categorical feature's one-hot
columns. Either way base_value + the sum of all contributions equals the model's raw log-odds output.

Reasons are positive only: reason_1..N are the features with the largest contributions that raise the
score (contribution > 0), largest first; a row with fewer such features leaves the later reasons empty.
Features that lower a score are never given as reasons, since CRM reads them as "why this customer is flagged".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from models.estimators import algorithm_of, encoded_feature_index
from models.registry import LoadedModel
from models.spec import ModelSpec

# Deciles 1-2 are the 20% CRM acts on first; 3-5 the next 30%; the rest low.
BANDS = ((2, "high"), (5, "medium"), (10, "low"))


def predict_scores(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class per row of `frame` (raw feature columns)."""
    return model.predict_proba(frame)[:, 1]


def raw_margin(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's raw output in log-odds per row of `frame`."""
    if algorithm_of(model) == "lightgbm":
        return np.asarray(model[-1].booster_.predict(model[:-1].transform(frame), raw_score=True), dtype=float)
    return np.asarray(model.decision_function(frame), dtype=float)


def contributions(model: Pipeline, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(per-feature log-odds contributions, one column per feature in model order; base value per row)."""
    features = list(model.named_steps["frame"].features)
    encoded = model[:-1].transform(frame)
    if algorithm_of(model) == "lightgbm":
        raw = np.asarray(model[-1].booster_.predict(encoded, pred_contrib=True), dtype=float)
        return pd.DataFrame(raw[:, :-1], index=frame.index, columns=features), raw[:, -1]
    final = model.named_steps["model"]
    # `encoded` is already centred on the training mean (the pipeline's `center` step).
    parts = np.asarray(encoded, dtype=float) * final.coef_[0]
    owners = np.asarray(encoded_feature_index(model))
    summed = np.column_stack([parts[:, owners == f].sum(axis=1) for f in features])
    return pd.DataFrame(summed, index=frame.index, columns=features), np.full(len(frame), float(final.intercept_[0]))


def deciles(scores: np.ndarray, entities: pd.Series) -> np.ndarray:
    """Decile by rank within the frame, 1 = the highest 10%; equal scores are ordered by entity."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=int)
    codes, _ = pd.factorize(entities, sort=True)
    order = np.lexsort((codes, -np.asarray(scores, dtype=float)))
    result = np.empty(n, dtype=int)
    result[order] = np.arange(n) * 10 // n + 1
    return result


def band_of(decile: int) -> str:
    """high / medium / low for a decile."""
    return next(name for last, name in BANDS if decile <= last)


def _format_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "missing"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def _level(model: Pipeline, feature: str, value: object) -> str:
    quartiles = model.named_steps["frame"].quartiles_.get(feature)
    if quartiles is None or not isinstance(value, (int, float, np.number)) or math.isnan(float(value)):
        return ""
    low, high = quartiles
    return " (low)" if value < low else " (high)" if value > high else " (typical)"


def reason_text(spec: ModelSpec, model: Pipeline, feature: str, value: object,
                descriptions: dict[str, str] | None = None) -> str:
    """Words a CRM user reads, e.g. "card transactions in 30 days = 2 (low) raises the churn score"."""
    label = (descriptions or {}).get(feature, feature)
    return f"{label} = {_format_value(value)}{_level(model, feature, value)} raises the {spec.name} score"


def top_reasons(contrib: pd.DataFrame, top: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, contribution) of the `top` largest positive contributions per row; -1 / NaN where fewer."""
    values = contrib.to_numpy(dtype=float)
    ranked = np.where(values > 0, values, -np.inf)
    # A stable sort keeps spec order between equal contributions, so reasons are deterministic.
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :top]
    picked = np.take_along_axis(ranked, order, axis=1)
    valid = np.isfinite(picked)
    return np.where(valid, order, -1), np.where(valid, picked, np.nan)


def score_frame(spec: ModelSpec, model: Pipeline | LoadedModel, frame: pd.DataFrame, *,
                model_version: str | int | None = None, top: int | None = None,
                descriptions: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per input row: entity, as_of, model, model_version, score, decile, band, base_value, reasons."""
    if isinstance(model, LoadedModel):
        model_version = model.version if model_version is None else model_version
        model = model.model
    if model_version is None:
        raise ValueError("score_frame needs model_version for a bare pipeline")
    top = spec.reasons_top if top is None else top
    scores = predict_scores(model, frame)
    contrib, base = contributions(model, frame)
    decile = deciles(scores, frame[spec.entity])
    out = pd.DataFrame({
        spec.entity: frame[spec.entity].to_numpy(), spec.as_of: frame[spec.as_of].to_numpy(),
        "model": spec.name, "model_version": str(model_version), "score": scores, "decile": decile,
        "band": [band_of(d) for d in decile], "base_value": base,
    })
    index, value = top_reasons(contrib, top)
    features = list(contrib.columns)
    raw = frame[features].to_numpy(dtype=object)
    for k in range(top):
        names, values, texts = [], [], []
        for row, feature_index in enumerate(index[:, k]):
            if feature_index < 0:
                names.append(None)
                values.append(None)
                texts.append(None)
                continue
            feature, cell = features[feature_index], raw[row, feature_index]
            names.append(feature)
            values.append(_format_value(cell))
            texts.append(reason_text(spec, model, feature, cell, descriptions))
        out[f"reason_{k + 1}"] = pd.Series(names, dtype="object")
        out[f"reason_{k + 1}_value"] = pd.Series(values, dtype="object")
        out[f"reason_{k + 1}_contribution"] = value[:, k]
        out[f"reason_{k + 1}_text"] = pd.Series(texts, dtype="object")
    return out
