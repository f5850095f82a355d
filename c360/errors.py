"""Errors users and schedulers see; kept free of heavy imports so the CLI can catch them cheaply.

Every error the pipeline raises on purpose is a C360Error: entry points (c360.entry) print it as
one line `c360: error: <message>` and exit with its code, which the Airflow tasks read to decide
whether a retry can help. Anything else is a bug: it keeps its traceback and exits 1.

Exit codes: 0 ok; 1 unexpected error (a bug, or the machine: worth a retry); 2 bad command-line
usage (argparse); 3 user error; 4 data error (the data, not the machine: no retry helps).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_USER_ERROR = 3
EXIT_DATA_ERROR = 4
# Codes that name a failure a retry of the same input cannot fix.
PERMANENT_EXIT_CODES = frozenset({EXIT_USAGE, EXIT_USER_ERROR, EXIT_DATA_ERROR})


class C360Error(Exception):
    """An anticipated failure: str() is the message a user reads, exit_code what the process returns."""

    exit_code = EXIT_FAILED


class UserError(C360Error, ValueError):
    """A mistake in what was asked for: bad arguments, unknown table, bad config, a file breaking its contract."""

    exit_code = EXIT_USER_ERROR


class DataError(C360Error):
    """The data fails a check a retry cannot change (a failed quality gate, a history finding)."""

    exit_code = EXIT_DATA_ERROR


class InsufficientDataError(DataError):
    """Too little data to do the job yet (e.g. a model's training set lacks labelled dates or a class)."""


class QualityGateError(DataError):
    """A critical expectation failed: nothing was committed. str() is the readable summary."""

    def __init__(self, result) -> None:
        super().__init__(result.summary)
        self.result = result
