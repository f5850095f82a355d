"""Holdout evaluation: overall metrics, lift by decile, metrics per segment value and fairness gaps."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.scoring import deciles
from models.spec import TOP_DECILE, ModelSpec

_METRIC_NAME = re.compile(r"[^\w.\- /:]")


@dataclass(frozen=True)
class Evaluation:
    """A candidate's scores on the holdout, summarised every way the gate and the model card need."""

    metrics: dict[str, float]
    lift: pd.DataFrame
    segments: pd.DataFrame
    fairness: pd.DataFrame
    gaps: dict[str, dict[str, float]]
    threshold: str | float


def metric_value(name: str, y: np.ndarray, score: np.ndarray) -> float:
    """roc_auc or pr_auc of scores against 0/1 labels; NaN when only one class is present."""
    if len(np.unique(y)) < 2:
        return float("nan")
    if name == "roc_auc":
        return float(roc_auc_score(y, score))
    if name == "pr_auc":
        return float(average_precision_score(y, score))
    raise ValueError(f"unknown metric {name}")


def selected(score: np.ndarray, entities: pd.Series, threshold: str | float) -> np.ndarray:
    """Which rows the decision threshold selects: the top decile by rank, or score >= a probability."""
    if threshold == TOP_DECILE:
        return deciles(score, entities) == 1
    return np.asarray(score) >= float(threshold)


def lift_table(y: np.ndarray, score: np.ndarray, entities: pd.Series) -> pd.DataFrame:
    """One row per decile (1 = highest scores): rows, positives, rate, lift over the base rate, cumulative capture."""
    frame = pd.DataFrame({"decile": deciles(score, entities), "y": y, "score": score})
    table = (frame.groupby("decile", as_index=False)
             .agg(rows=("y", "size"), positives=("y", "sum"), mean_score=("score", "mean")))
    base_rate = max(float(np.mean(y)), 1e-12)
    table["rate"] = table["positives"] / table["rows"]
    table["lift"] = table["rate"] / base_rate
    table["cumulative_capture"] = table["positives"].cumsum() / max(int(np.sum(y)), 1)
    return table


def segment_table(frame: pd.DataFrame, y: np.ndarray, score: np.ndarray, columns: tuple[str, ...],
                  min_rows: int, min_positives: int = 1) -> pd.DataFrame:
    """Per segment column and value: rows, positives, roc_auc, pr_auc and whether the gate checks it (at least
    `min_rows` rows and `min_positives` positives, and both classes)."""
    rows = []
    for column in columns:
        values = frame[column].astype("object").where(frame[column].notna(), "null").astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            ys, ss = y[mask], score[mask]
            both = len(np.unique(ys)) == 2
            rows.append({"column": column, "value": value, "rows": int(mask.sum()), "positives": int(ys.sum()),
                         "roc_auc": metric_value("roc_auc", ys, ss), "pr_auc": metric_value("pr_auc", ys, ss),
                         "eligible": bool(both and mask.sum() >= min_rows and ys.sum() >= min_positives)})
    return pd.DataFrame(rows, columns=["column", "value", "rows", "positives", "roc_auc", "pr_auc", "eligible"])


def fairness_table(frame: pd.DataFrame, y: np.ndarray, chosen: np.ndarray, columns: tuple[str, ...],
                   min_rows: int, min_positives: int = 1) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per group: selection rate and true-positive rate at the threshold; per column: the max-min gaps.

    Selection rates compare groups of at least `min_rows` rows; true-positive rates only those that also
    hold `min_positives` positives (a rate over a handful of cases is noise, not a finding)."""
    rows, gaps = [], {}
    for column in columns:
        values = frame[column].astype("object").where(frame[column].notna(), "null").astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            positives = int(y[mask].sum())
            rows.append({"column": column, "value": value, "rows": int(mask.sum()), "positives": positives,
                         "selection_rate": float(chosen[mask].mean()),
                         "tpr": float(chosen[mask & (y == 1)].mean()) if positives else float("nan"),
                         "eligible": bool(mask.sum() >= min_rows)})
        groups = [r for r in rows if r["column"] == column and r["eligible"]]
        gaps[column] = {"selection_rate_gap": _spread([r["selection_rate"] for r in groups]),
                        "tpr_gap": _spread([r["tpr"] for r in groups
                                            if not math.isnan(r["tpr"]) and r["positives"] >= min_positives]),
                        "groups": float(len(groups))}
    table = pd.DataFrame(rows, columns=["column", "value", "rows", "positives", "selection_rate", "tpr", "eligible"])
    return table, gaps


def _spread(values: list[float]) -> float:
    return float(max(values) - min(values)) if len(values) >= 2 else float("nan")


def evaluate(spec: ModelSpec, holdout: pd.DataFrame, score: np.ndarray) -> Evaluation:
    """Evaluate holdout scores against the spec's label, segments and fairness groups."""
    y = holdout[spec.label.column].astype(int).to_numpy()
    score = np.asarray(score, dtype=float)
    entities = holdout[spec.entity]
    lift = lift_table(y, score, entities)
    metrics = {"roc_auc": metric_value("roc_auc", y, score), "pr_auc": metric_value("pr_auc", y, score),
               "brier": float(brier_score_loss(y, score)), "lift_top_decile": float(lift["lift"].iloc[0]),
               "holdout_rows": float(len(y)), "holdout_positive_rate": float(y.mean())}
    gate = spec.gate
    segments = segment_table(holdout, y, score, spec.segments, gate.min_segment_rows, gate.min_group_positives)
    chosen = selected(score, entities, gate.threshold)
    fairness, gaps = fairness_table(holdout, y, chosen, spec.fairness_groups, gate.min_segment_rows,
                                     gate.min_group_positives)
    return Evaluation(metrics, lift, segments, fairness, gaps, gate.threshold)


def metric_name(*parts: object) -> str:
    """An MLflow-safe metric name from parts joined with dots (characters MLflow rejects become _)."""
    return ".".join(_METRIC_NAME.sub("_", str(p)) for p in parts)


def flat_metrics(evaluation: Evaluation) -> dict[str, float]:
    """All metrics of an evaluation as MLflow metric name -> finite value."""
    out = dict(evaluation.metrics)
    for row in evaluation.segments.itertuples(index=False):
        out[metric_name("segment", row.column, row.value, "roc_auc")] = row.roc_auc
        out[metric_name("segment", row.column, row.value, "pr_auc")] = row.pr_auc
        out[metric_name("segment", row.column, row.value, "rows")] = float(row.rows)
    for column, gap in evaluation.gaps.items():
        out[metric_name("fairness", column, "tpr_gap")] = gap["tpr_gap"]
        out[metric_name("fairness", column, "selection_rate_gap")] = gap["selection_rate_gap"]
    for row in evaluation.fairness.itertuples(index=False):
        out[metric_name("fairness", row.column, row.value, "selection_rate")] = row.selection_rate
        out[metric_name("fairness", row.column, row.value, "tpr")] = row.tpr
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}
