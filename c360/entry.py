"""How every entry point ends: the `c360` CLI and each job's `python -m` / spark-submit main().

A C360Error is the user's or the data's problem: one line `c360: error: <message>` on stderr (a
failed quality gate: its readable summary) and the error's exit code, which the Airflow tasks
read to fail at once instead of retrying. Anything else is a bug: the full traceback and exit 1.
With --debug (CLI) or C360_DEBUG=1 (jobs and CLI) a C360Error shows its traceback as well.

Kept free of heavy imports: the CLI wraps commands with it before Spark is ever imported.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, Mapping

from c360.errors import EXIT_FAILED, C360Error

DEBUG_VAR = "C360_DEBUG"
PROG = "c360"
# Ctrl-C: the shell's convention for a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether $C360_DEBUG asks for tracebacks of anticipated errors too."""
    value = (os.environ if environ is None else environ).get(DEBUG_VAR, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def report(exc: BaseException, debug: bool = False, stream=None) -> int:
    """Write `exc` to stderr as its reader needs it and return the process's exit code."""
    stream = sys.stderr if stream is None else stream
    if isinstance(exc, C360Error):
        if debug:
            traceback.print_exception(exc, file=stream)
        stream.write(f"{PROG}: error: {exc}\n")
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        stream.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    traceback.print_exception(exc, file=stream)
    return EXIT_FAILED


def run_main(main: Callable[..., int | None], *args, debug: bool | None = None) -> int:
    """Call main(*args) and turn what it raises into an exit code (argparse's own exits pass through)."""
    debug = debug_enabled() if debug is None else debug
    try:
        code = main(*args)
    except (Exception, KeyboardInterrupt) as exc:
        code = report(exc, debug)
    finally:
        # Whatever was printed must reach the log before the process ends (stdout may be a pipe).
        sys.stdout.flush()
        sys.stderr.flush()
    return 0 if code is None else code
