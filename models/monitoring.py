"""Drift: population stability index (PSI) of features and scores between training and now."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.spec import ModelSpec

# Empty bins would make PSI infinite; a small floor keeps it finite and still large.
EPSILON = 1e-4


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.zeros_like(counts, dtype=float)
    return np.clip(shares, EPSILON, None)


def _index(expected: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of a numeric sample against a reference, on quantile bins of the reference; nulls form their own bin."""
    expected = np.asarray(pd.to_numeric(pd.Series(expected), errors="coerce"), dtype=float)
    actual = np.asarray(pd.to_numeric(pd.Series(actual), errors="coerce"), dtype=float)
    known = expected[~np.isnan(expected)]
    if len(known) == 0:
        edges = np.array([-np.inf, np.inf])
    else:
        inner = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])

    def counts(sample: np.ndarray) -> np.ndarray:
        finite = sample[~np.isnan(sample)]
        binned = np.histogram(finite, bins=edges)[0] if len(finite) else np.zeros(len(edges) - 1)
        return np.append(binned, np.isnan(sample).sum()).astype(float)

    return _index(_proportions(counts(expected)), _proportions(counts(actual)))


def psi_categorical(expected: pd.Series, actual: pd.Series) -> float:
    """PSI of a categorical sample against a reference, one bin per level (nulls included)."""
    expected = pd.Series(expected).astype("object").where(pd.Series(expected).notna(), "<null>").astype(str)
    actual = pd.Series(actual).astype("object").where(pd.Series(actual).notna(), "<null>").astype(str)
    levels = sorted(set(expected) | set(actual))
    e = expected.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    a = actual.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    return _index(_proportions(e), _proportions(a))


def drift_report(spec: ModelSpec, train_frame: pd.DataFrame, score_frame_features: pd.DataFrame,
                 scores_train: np.ndarray, scores_now: np.ndarray) -> pd.DataFrame:
    """One row per feature plus `score`: PSI of now against training, and whether it passes the warning level."""
    rows = []
    for feature in spec.features:
        if feature in spec.categorical:
            value = psi_categorical(train_frame[feature], score_frame_features[feature])
        else:
            value = psi(train_frame[feature], score_frame_features[feature], spec.drift.bins)
        rows.append({"feature": feature, "psi": value})
    rows.append({"feature": "score", "psi": psi(scores_train, scores_now, spec.drift.bins)})
    report = pd.DataFrame(rows, columns=["feature", "psi"])
    report["warning"] = report["psi"] >= spec.drift.psi_warning
    return report


def load_reference(client, run_id: str) -> pd.DataFrame | None:
    """The drift reference a training run logged (its training features, a sample, and their scores); None for
    a run that logged none (trained before references were kept)."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from models.train import REFERENCE_FILE

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"monitoring/{REFERENCE_FILE}", tmp)
        except MlflowException:
            return None
        return pd.read_parquet(path)
