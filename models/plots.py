"""Evaluation plots drawn with matplotlib's object API (Agg canvas, no pyplot state, no display needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def reliability_figure(y: np.ndarray, score: np.ndarray, title: str, bins: int = 10) -> Figure:
    """Calibration: mean predicted probability against the observed rate, per score quantile bin."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "score": np.asarray(score, dtype=float)})
    frame["bin"] = pd.qcut(frame["score"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(predicted=("score", "mean"), observed=("y", "mean"), rows=("y", "size"))
    figure = _figure(5, 5)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.plot(table["predicted"], table["observed"], marker="o", label="model")
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed rate")
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def shap_summary_figure(contrib: pd.DataFrame, values: pd.DataFrame, title: str, max_features: int = 15) -> Figure:
    """A SHAP-style summary: one row of points per feature (largest mean |contribution| on top), coloured by value."""
    order = contrib.abs().mean().sort_values(ascending=False).index[:max_features][::-1]
    figure = _figure(7, 0.45 * len(order) + 1.5)
    axes = figure.add_subplot(1, 1, 1)
    # Fixed jitter so the same model always draws the same picture.
    rng = np.random.default_rng(0)
    for position, feature in enumerate(order):
        x = contrib[feature].to_numpy(dtype=float)
        raw = (pd.to_numeric(values[feature], errors="coerce") if feature in values
               else pd.Series(np.nan, index=contrib.index))
        colour = raw.rank(pct=True).to_numpy(dtype=float)
        jitter = position + rng.uniform(-0.3, 0.3, size=len(x))
        known = ~np.isnan(colour)
        axes.scatter(x[~known], jitter[~known], s=6, color="lightgrey")
        points = axes.scatter(x[known], jitter[known], s=6, c=colour[known], cmap="coolwarm", vmin=0, vmax=1)
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set_yticks(range(len(order)), list(order))
    axes.set_xlabel("contribution to log-odds (SHAP value)")
    axes.set_title(title)
    if len(order):
        figure.colorbar(points, ax=axes, label="feature value (percentile; grey = missing or category)")
    figure.tight_layout()
    return figure
