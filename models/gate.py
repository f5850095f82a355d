"""The promotion gate: a challenger becomes champion only if it clears every threshold of the spec's gate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.evaluate import Evaluation
from models.spec import GateSpec


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, and why (the failed checks when refused, what it cleared when promoted)."""

    promote: bool
    reasons: tuple[str, ...]
    challenger_metric: float
    champion_metric: float | None
    champion_version: str | None


def decide(gate: GateSpec, evaluation: Evaluation, *, champion_version: str | None,
           champion_metric: float | None, champion_note: str | None = None) -> GateDecision:
    """Apply the gate to a challenger's holdout evaluation and the champion's metric on the same holdout."""
    name = gate.metric
    value = evaluation.metrics[name]
    failures: list[str] = []
    passes: list[str] = []
    if math.isnan(value) or value < gate.min_value:
        failures.append(f"{name} {value:.4f} on the holdout is below the floor {gate.min_value}")
    else:
        passes.append(f"{name} {value:.4f} >= floor {gate.min_value}")
    if champion_note:
        passes.append(champion_note)
    elif champion_metric is None:
        passes.append("no champion yet: the first version that clears the gate becomes champion")
    elif value < champion_metric + gate.margin:
        failures.append(f"{name} {value:.4f} does not beat champion v{champion_version} ({champion_metric:.4f}) "
                        f"by the margin {gate.margin} on the same holdout")
    else:
        passes.append(f"{name} {value:.4f} beats champion v{champion_version} ({champion_metric:.4f}) "
                      f"by at least {gate.margin}")
    failures.extend(_segment_failures(gate, evaluation))
    failures.extend(_fairness_failures(gate, evaluation))
    promote = not failures
    return GateDecision(promote, tuple(passes if promote else failures), value, champion_metric, champion_version)


def _segment_failures(gate: GateSpec, evaluation: Evaluation) -> list[str]:
    if gate.segment_floor is None:
        return []
    eligible = evaluation.segments[evaluation.segments["eligible"]]
    return [f"segment {row.column}={row.value} {gate.metric} {getattr(row, gate.metric):.4f} is below "
            f"the segment floor {gate.segment_floor} ({row.rows} rows)"
            for row in eligible.itertuples(index=False) if getattr(row, gate.metric) < gate.segment_floor]


def _fairness_failures(gate: GateSpec, evaluation: Evaluation) -> list[str]:
    failures = []
    for column, gaps in evaluation.gaps.items():
        for key, limit in (("tpr_gap", gate.max_tpr_gap), ("selection_rate_gap", gate.max_selection_rate_gap)):
            gap = gaps[key]
            if limit is not None and not math.isnan(gap) and gap > limit:
                failures.append(f"fairness {column}: {key} {gap:.4f} exceeds {limit} "
                                f"at threshold {evaluation.threshold}")
    return failures
