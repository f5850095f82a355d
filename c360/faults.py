"""Named crash points for fault-injection tests: the process dies there, as a `kill -9` would kill it.

`C360_CRASH_AT=<point>` in a job's environment makes `crash_point(<point>)` send SIGKILL to the process
itself: no cleanup, no `finally`, no flush, exactly what an OOM killer or a lost node does. Points are
named `<job>.<step>[:<table>]`, e.g. `silver_conform.after_commit:silver.accounts`. Unset, a point costs
one dictionary lookup. Production never sets the variable.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "C360_CRASH_AT"
log = logging.getLogger(__name__)


def crash_point(point: str, table: str | None = None) -> None:
    """Die with SIGKILL here when C360_CRASH_AT names this point (`point` or `point:table`)."""
    wanted = os.environ.get(ENV)
    if wanted and wanted in (point, f"{point}:{table}"):
        log.warning("crash point %s reached: killing this process (%s=%s)", point, ENV, wanted)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
