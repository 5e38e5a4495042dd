"""A step's stdout is its ``outputs.result``: nothing else may reach it.

Libraries print there freely (Ray's driver echoes worker and raylet lines, some of them
written straight to file descriptor 1), so a step runs with descriptor 1 pointed at
stderr, and only the returned value — printed by Hera's runner after the step returns —
goes to the real stdout.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def result_only_stdout(step: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(step)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
        try:
            return step(*args, **kwargs)
        finally:
            _quiet_ray()
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), write_through=True)

    return wrapper


def _quiet_ray() -> None:
    """Disconnect from Ray (if connected) so its threads print nothing afterwards."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
