"""The image that every manifest under deploy/k8s runs, run here with podman: its entry
points answer, the retraining steps' runner and functions import, it runs as a user that is
not root, its labels name the commit and version, and nothing of its build is left in it.

`make test-image` builds the image when needed and runs this file with TEST_IMAGE set;
without TEST_IMAGE (as in a plain `pytest tests`) the module is skipped. Containers run
with no network (`--network none`): nothing here may need one."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("TEST_IMAGE", "")
# The same defaults as deploy/image/build.sh: crun refuses this machine's hybrid cgroups
# and podman's default rlimits fail on setrlimit in some VMs.
RUN_FLAGS = shlex.split(
    os.environ.get(
        "PODMAN_RUN_FLAGS", "--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
    )
)
UID = 10001

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not IMAGE, reason="`make test-image` runs this with TEST_IMAGE set"),
]


def _service_scripts() -> list[str]:
    scripts: list[str] = []
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        scripts += tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    return scripts


def _retrain_steps() -> list[str]:
    """`module:function` of every step of the rendered retraining template, as run by
    `python -m hera.workflows.runner -e module:function`."""
    template = yaml.safe_load(
        (ROOT / "deploy/k8s/base/workflows/retrain-template.yaml").read_text()
    )
    steps = []
    for t in template["spec"]["templates"]:
        args = t.get("script", {}).get("args", [])
        if "hera.workflows.runner" in args:
            steps.append(args[args.index("-e") + 1])
    return steps


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=240)
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} → {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def run(*command: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """`podman run` the image with no network; `entrypoint` replaces `driftloop`."""
    override = ["--entrypoint", entrypoint] if entrypoint else []
    return podman("run", "--rm", "--network", "none", *RUN_FLAGS, *override, IMAGE, *command)


def sh(script: str) -> str:
    return run("-c", script, entrypoint="/bin/bash").stdout


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    assert shutil.which("podman"), "podman is not installed: `make image-tools`"
    inspected = json.loads(podman("image", "inspect", IMAGE).stdout)
    return dict(inspected[0]["Config"])


def test_driftloop_is_the_entrypoint_and_answers_help(config):
    assert config["Entrypoint"] == ["driftloop"]
    out = run("--help").stdout
    assert "Usage: driftloop" in out
    assert "retrain" in out and "promote" in out


@pytest.mark.parametrize("script", _service_scripts())
def test_each_service_entrypoint_answers_help(script):
    out = run("--help", entrypoint=script).stdout
    assert "Usage:" in out, out


def test_the_retraining_steps_import_as_the_workflow_runs_them():
    steps = _retrain_steps()
    assert {s.rsplit(":", 1)[1] for s in steps} >= {"build_dataset", "train", "promote"}
    # What `python -m hera.workflows.runner -e module:function` needs: the runner module,
    # and each step's function, importable in the image's interpreter.
    probe = (
        "import importlib, sys\n"
        "importlib.import_module('hera.workflows.runner')\n"
        "for ref in sys.argv[1:]:\n"
        "    module, name = ref.split(':')\n"
        "    assert callable(getattr(importlib.import_module(module), name)), ref\n"
        "print('ok', len(sys.argv) - 1)\n"
    )
    out = run("-c", probe, *steps, entrypoint="python").stdout
    assert out.strip() == f"ok {len(steps)}"


def test_it_runs_as_a_user_that_is_not_root(config):
    assert config["User"] == f"{UID}:{UID}"  # numeric, so runAsNonRoot can check it
    out = sh(
        "id -u; id -g; "
        "touch $HOME/w $DRIFTLOOP_STATE_DIR/w && echo writable; "
        "touch /app/w 2>/dev/null || echo app-read-only"
    )
    assert out.split() == [str(UID), str(UID), "writable", "app-read-only"]


def test_a_login_shell_finds_ray_as_kuberay_starts_it():
    # KubeRay runs `bash -lc 'ulimit ...; ray start ...'`; Debian's /etc/profile resets PATH.
    assert run("-lc", "command -v ray", entrypoint="/bin/bash").stdout.strip() == (
        "/app/.venv/bin/ray"
    )


def test_the_labels_name_a_commit_of_this_repository_and_the_version(config):
    labels = config["Labels"]
    revision = labels["org.opencontainers.image.revision"]
    match = re.fullmatch(r"([0-9a-f]{40})(-dirty)?", revision)
    assert match, revision
    sha = match.group(1)
    git = ["git", "-C", str(ROOT)]
    assert subprocess.run([*git, "cat-file", "-e", f"{sha}^{{commit}}"]).returncode == 0
    assert subprocess.run([*git, "merge-base", "--is-ancestor", sha, "HEAD"]).returncode == 0
    version = tomllib.loads((ROOT / "libs/driftloop/pyproject.toml").read_text())["project"][
        "version"
    ]
    assert labels["org.opencontainers.image.version"] == version
    assert IMAGE.endswith(f":{version}")


def test_nothing_of_the_build_is_left():
    out = sh(
        "for b in uv uvx pip pip3 gcc cc c++ g++ make ld as; do command -v $b; done; "
        # The uv cache was a build cache mount: at most its empty mount point is left.
        "ls -d /opt/uv /root/.cache $HOME/.cache 2>/dev/null; "
        "find /var/cache/uv -mindepth 1 2>/dev/null | head -3; "
        "find /var/lib/apt/lists /var/cache/apt -type f ! -name lock 2>/dev/null; "
        "dpkg-query -W -f='${db:Status-Abbrev}${Package}\\n' python3-venv python3-pip gcc "
        "2>/dev/null | grep '^ii'; "
        "echo end"
    )
    assert out.split() == ["end"], out
    history = podman("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE)
    # uv was installed in a stage of its own (bind-mounted into the image's `uv sync`).
    assert "pip install" not in history.stdout
