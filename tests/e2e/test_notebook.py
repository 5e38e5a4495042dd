"""The data scientists' starting notebook (docs/notebooks/train-a-candidate.ipynb), executed
cell by cell with nbclient in a kernel of this virtualenv, so it cannot rot.

Real parts: Ray Train on the local cluster, Feast on sqlite/parquet, the model store and
git in a throwaway workspace. The notebook deploys nothing to Ray Serve and creates no
Kafka topics; the fixture still removes any topic under its prefix."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from driftloop.gitops import Git, declared
from driftloop.kafka import connect_admin
from driftloop.models import ModelStore
from driftloop.settings import Settings

# The notebook builds its world and trains two models: about 160 s.
pytestmark = pytest.mark.timeout(480)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "notebooks" / "train-a-candidate.ipynb"
KERNEL = "driftloop-venv"


def _kernel_manager(directory: Path) -> AsyncKernelManager:
    """A kernel running this interpreter (the virtualenv's python), whatever kernelspecs
    the machine has installed."""
    spec = directory / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "driftloop (.venv)",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(directory)])
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("notebook")
    summary = base / "summary.json"
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        km=_kernel_manager(base / "kernels"),
        timeout=600,  # per cell
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    env = {
        **os.environ,
        "DRIFTLOOP_NOTEBOOK_WORKSPACE": str(base / "workspace"),
        "DRIFTLOOP_NOTEBOOK_SUMMARY": str(summary),
    }
    try:
        client.execute(env=env)
    finally:
        print(f"\nthe executed notebook (cells and outputs): {base}")
        nbformat.write(notebook, base / "executed.ipynb")  # type: ignore[no-untyped-call]
    result: dict[str, Any] = json.loads(summary.read_text())
    yield result
    admin = connect_admin(Settings())
    try:
        mine = [t for t in admin.list_topics() if t.startswith(result["topic_prefix"])]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def test_the_notebook_runs_in_the_virtualenv(executed: dict[str, Any]) -> None:
    assert Path(executed["python"]).resolve() == Path(sys.executable).resolve()


def test_the_candidate_is_stored_with_its_experiment(executed: dict[str, Any]) -> None:
    store = ModelStore(executed["model_store"])
    candidate = store.get(executed["model"], executed["candidate"])
    champion = store.get(executed["model"], executed["champion"])
    assert candidate.version != champion.version
    lineage = candidate.metadata
    assert lineage.params["xgboost"]["max_depth"] == 6  # type: ignore[index,call-overload]
    window, older = lineage.training_window, champion.metadata.training_window
    assert (window.end - window.start).days == 6
    assert older.end < window.end  # the champion was trained on older data
    assert lineage.gate is not None and lineage.gate.passed
    assert lineage.gate.champion_version == executed["champion"]


def test_the_candidate_was_compared_with_the_champion(executed: dict[str, Any]) -> None:
    pr_auc = executed["pr_auc"]
    assert executed["gate_passed"] is True
    assert pr_auc["champion"] is not None
    assert pr_auc["candidate"] >= pr_auc["champion"]
    assert pr_auc["candidate"] > pr_auc["baseline"]


def test_the_promotion_is_a_commit_on_its_branch(executed: dict[str, Any]) -> None:
    model, version = executed["model"], executed["candidate"]
    git = Git(Path(executed["git_repo"]))
    assert executed["branch"] == f"promote/{model}-{version}"
    assert git.rev(f"refs/heads/{executed['branch']}") == executed["commit"]
    assert git.rev("refs/heads/main") == executed["commit"]  # policy merge: fast-forwarded
    message = git.run("log", "-1", "--format=%B", executed["commit"])
    assert message.startswith(f"Promote {model} {version} (notebook:")
    assert f"Version: {version}" in message
    assert f"Replaces: models:/{model}/{executed['champion']}" in message
    assert "Gate: passed" in message
    serve = git.show(executed["commit"], f"deploy/apps/{model}/serve.yaml")
    assert serve is not None
    stored = ModelStore(executed["model_store"]).get(model, version)
    assert declared(serve, model) == (f"models:/{model}/{version}", stored.sha256)


def test_the_saved_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
