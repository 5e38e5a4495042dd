"""What a new Python process of this virtualenv pays to import what driftloop's processes
import (Ray, Feast, pandas, scikit-learn, XGBoost, and driftloop itself), with the bytecode
that ``make install`` compiles against the same imports compiled from source.

Every Ray worker, Ray Job driver, service and CLI is such a process. uv does not compile
bytecode unless asked, and with ``PYTHONDONTWRITEBYTECODE`` set (as it is on some machines
and in containers) Python never writes it either, so without the install step every
process compiles some 1,100 modules before it does anything. The baseline points Python
at an empty bytecode cache (``PYTHONPYCACHEPREFIX``) in the same run, so it compiles from
source; the two alternate, ``--repeat`` times each, and the ratio is of the medians.

    python bench/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import record

IMPORTS = "import ray, feast, pandas, sklearn, xgboost, driftloop.cli, driftloop.training"


def started(env: dict[str, str]) -> float:
    """Seconds for a fresh interpreter to import ``IMPORTS`` and exit."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], env=env, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compiled = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="pycache-") as empty:
        source = {**compiled, "PYTHONPYCACHEPREFIX": empty}  # no bytecode found, none written
        started(compiled)  # warm the page cache for both
        with_bytecode, from_source = [], []
        for _ in range(args.repeat):
            with_bytecode.append(started(compiled))
            from_source.append(started(source))
    ours, baseline = statistics.median(with_bytecode), statistics.median(from_source)
    record(
        "startup",
        {
            "imports": IMPORTS,
            "repeat": args.repeat,
            "with_install_bytecode_s": ours,
            "compiled_from_source_s": baseline,
            "ratio_bytecode_over_source": ours / baseline,
        },
    )


if __name__ == "__main__":
    main()
