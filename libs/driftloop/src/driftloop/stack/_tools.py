"""Finding the console scripts installed beside this interpreter (supervisord, ray)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def venv_tool(name: str) -> str:
    """``name`` from this interpreter's bin directory, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` is not installed; run `make install`")
    return found
