"""Errors users and schedulers see; kept free of heavy imports so the CLI can catch them cheaply."""

from __future__ import annotations


class QualityGateError(RuntimeError):
    """A critical expectation failed: the write was rolled back. str() is the readable summary."""

    def __init__(self, result) -> None:
        super().__init__(result.summary)
        self.result = result
