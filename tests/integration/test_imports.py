"""Importing any workspace package does nothing: no file or directory appears, checked in
one fresh interpreter that imports them one after another (a side effect shows up at the
first import that causes it, and is named with that module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


TELEMETRY_PROBE = """
import json, sys, threading
outbound = []

def hook(event, args):
    # every name resolution and every URL request the process makes
    if event in ("socket.getaddrinfo", "urllib.Request"):
        outbound.append([event, str(args[0])])

sys.addaudithook(hook)
import pandas as pd
from driftloop.drift import compare, load_policy
from driftloop.profiles import deserialize, profile_frame, serialize

frame = pd.DataFrame({"amount": [1.0, 2.5, 4.0] * 50, "country": ["DE", "FR", "DE"] * 50})
reference = deserialize(serialize(profile_frame(frame)))
target = profile_frame(frame.assign(amount=frame["amount"] * 3))
columns = {
    "amount": ("ks", target.get_column("amount"), reference.get_column("amount")),
    "country": ("chi-square", target.get_column("country"), reference.get_column("country")),
}
tests = compare(columns, load_policy(sys.argv[1]).drift)
for thread in threading.enumerate():  # whylogs reports on threads joined at exit
    if thread is not threading.main_thread():
        thread.join(30)
print(json.dumps({"tests": len(tests), "outbound": outbound}))
"""


def test_profiling_and_comparing_report_nothing_to_whylogs_vendor(tmp_path):
    """whylogs POSTs usage statistics to its vendor from every process that imports it,
    unless opted out before that first import: a fresh interpreter that profiles,
    serializes, reads back and compares (as the register step and the monitor do) makes
    no name lookup and no URL request at all."""
    from driftloop.profiles import WHYLOGS_OPT_OUT

    monitor = Path(__file__).resolve().parents[2] / "deploy" / "apps" / "fraud" / "monitor.yaml"
    env = {k: v for k, v in os.environ.items() if k != WHYLOGS_OPT_OUT}
    out = subprocess.run(
        [sys.executable, "-c", TELEMETRY_PROBE, str(monitor)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=180,
    )  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["tests"] == 2, found  # the comparison ran: both columns tested
    assert found["outbound"] == [], found["outbound"]
