"""Importing any workspace package does nothing: no file or directory appears, checked in
one fresh interpreter that imports them one after another (a side effect shows up at the
first import that causes it, and is named with that module)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.test_workspace import MODULES

PROBE = """
import importlib, json, os, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
    made = sorted(os.listdir("."))
    if made:
        print(json.dumps({"module": module, "made": made}))
        break
else:
    print(json.dumps({"module": None, "made": []}))
"""


def test_imports_have_no_side_effects(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *MODULES],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=180,
    )  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"module": None, "made": []}, (
        f"importing {found['module']} created {found['made']}"
    )
