"""A light step run in the driver's own process: the template's command without the new
interpreter. ``python -m <module> <args>`` becomes ``runpy.run_module(<module>)`` with
``sys.argv`` set to the arguments and file descriptor 1 pointed at the result file while
it runs — what ``> result`` does for a step run as a Ray Job — so the step's stdout is its
``outputs.result`` either way, and its log (stderr) goes to the driver's.

A step fails as its process would: an exception (its traceback is logged) or a non-zero
``SystemExit``. What escapes ``Exception`` (an interrupt) ends the driver, whose successor
runs the step again.
"""

from __future__ import annotations

import io
import logging
import os
import runpy
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def run_module(module: str, arguments: list[str], result: Path) -> str | None:
    """Run ``python -m module *arguments`` here, its stdout into ``result``; None if it
    succeeded, else why it failed."""
    sys.stdout.flush()
    saved_fd, saved_stdout, saved_argv = os.dup(1), sys.stdout, sys.argv
    with result.open("wb") as out:
        os.dup2(out.fileno(), 1)
        captured = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), write_through=True)
        sys.stdout, sys.argv = captured, [module, *arguments]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                return f"exited with {exc.code}"
        except Exception as exc:
            log.exception("step %s %s failed", module, " ".join(arguments))
            return f"{type(exc).__name__}: {exc}"
        finally:
            sys.stdout.flush()  # the step may have replaced it (on descriptor 1)
            captured.close()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
            sys.stdout, sys.argv = saved_stdout, saved_argv
    return None
