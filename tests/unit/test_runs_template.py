"""What the local executor refuses when it loads a WorkflowTemplate: every Argo feature it
does not implement is named at load time, never discovered half-way through a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.render import OUT

from driftloop.runs import LOCAL_EXECUTOR, UnsupportedFeature, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / OUT / "retrain-template.yaml"
Doc = dict[str, Any]


def _variant(tmp_path: Path, change: Callable[[Doc], None]) -> Path:
    document = yaml.safe_load(TEMPLATE.read_text())
    change(document)
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _step(document: Doc, name: str) -> Doc:
    [step] = [t for t in document["spec"]["templates"] if t["name"] == name]
    found: Doc = step
    return found


def _task(document: Doc, name: str) -> Doc:
    [task] = [t for t in document["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == name]
    found: Doc = task
    return found


def _argument(document: Doc, task: str, name: str, value: str) -> None:
    for parameter in _task(document, task)["arguments"]["parameters"]:
        if parameter["name"] == name:
            parameter["value"] = value


def test_the_rendered_template_loads(tmp_path):
    assert len(load_template(_variant(tmp_path, lambda d: None)).dag()) == 5


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "OnError"])
def test_the_retry_policies_it_implements_load(tmp_path, policy):
    def change(d: Doc) -> None:
        _step(d, "train")["retryStrategy"]["retryPolicy"] = policy

    template = load_template(_variant(tmp_path, change))
    retry = template.template("train").retryStrategy
    assert retry is not None and retry.retryPolicy == policy


def test_a_retry_policy_it_does_not_implement_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _step(d, "train")["retryStrategy"]["retryPolicy"] = "OnTransientError"

    with pytest.raises(UnsupportedFeature, match=r"retryStrategy\.retryPolicy: Input should be"):
        load_template(_variant(tmp_path, change))


@pytest.mark.parametrize("limit", ["{{workflow.parameters.retries}}", "two", "-1", 1.5])
def test_a_retry_limit_that_is_not_a_whole_number_is_refused(tmp_path, limit):
    def change(d: Doc) -> None:
        _step(d, "train")["retryStrategy"]["limit"] = limit

    with pytest.raises(UnsupportedFeature, match=r"retryStrategy\.limit"):
        load_template(_variant(tmp_path, change))


def test_where_a_step_runs_locally_is_read_from_its_annotation(tmp_path):
    template = load_template(_variant(tmp_path, lambda d: None))
    in_driver = {t.name: template.template(t.template).in_driver for t in template.dag()}
    assert in_driver == {"build-dataset": True, "train": False, "evaluate": True,
                         "register": True, "promote": True}  # fmt: skip

    def as_job(d: Doc) -> None:
        _step(d, "evaluate")["metadata"]["annotations"][LOCAL_EXECUTOR] = "ray-job"

    assert not load_template(_variant(tmp_path, as_job)).template("evaluate").in_driver


def test_an_unknown_place_to_run_a_step_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _step(d, "evaluate")["metadata"]["annotations"][LOCAL_EXECUTOR] = "in-drvier"

    with pytest.raises(UnsupportedFeature, match="driftloop/local-executor 'in-drvier'"):
        load_template(_variant(tmp_path, change))

    def labelled(d: Doc) -> None:  # pod labels would mean nothing locally: refused, named
        _step(d, "evaluate")["metadata"]["labels"] = {"team": "fraud"}

    with pytest.raises(UnsupportedFeature, match=r"metadata\.labels"):
        load_template(_variant(tmp_path, labelled))


def test_inline_script_source_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _step(d, "evaluate")["script"]["source"] = "print('hello')"

    with pytest.raises(UnsupportedFeature, match="template evaluate: script source"):
        load_template(_variant(tmp_path, change))


def test_a_script_that_is_not_the_hera_runner_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _step(d, "evaluate")["script"]["args"] = ["-m", "pip", "install", "x"]

    with pytest.raises(UnsupportedFeature, match="template evaluate: only `python -m hera"):
        load_template(_variant(tmp_path, change))


def test_an_expression_template_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _argument(d, "train", "run_id", "{{=sprig.upper(workflow.name)}}")

    with pytest.raises(UnsupportedFeature, match=r"task train argument run_id.*\{\{=\.\.\.\}\}"):
        load_template(_variant(tmp_path, change))


def test_a_reference_to_an_unknown_task_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _argument(d, "evaluate", "candidate", "{{tasks.nope.outputs.result}}")

    with pytest.raises(UnsupportedFeature, match="there is no task 'nope'"):
        load_template(_variant(tmp_path, change))


def test_a_reference_to_a_task_that_is_not_upstream_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _argument(d, "train", "dataset", "{{tasks.promote.outputs.result}}")

    with pytest.raises(UnsupportedFeature, match="'promote' is not upstream"):
        load_template(_variant(tmp_path, change))


def test_an_undeclared_workflow_parameter_is_refused(tmp_path):
    def change(d: Doc) -> None:
        _argument(d, "train", "model", "{{workflow.parameters.modle}}")

    with pytest.raises(UnsupportedFeature, match="declares no parameter 'modle'"):
        load_template(_variant(tmp_path, change))


def test_other_variables_are_refused(tmp_path):
    def change(d: Doc) -> None:
        _argument(d, "train", "run_id", "{{workflow.uid}}")

    with pytest.raises(UnsupportedFeature, match=r"\{\{workflow\.uid\}\}: only workflow\.name"):
        load_template(_variant(tmp_path, change))


def test_an_expression_in_the_mutex_name_is_refused(tmp_path):
    def change(d: Doc) -> None:
        mutex = d["spec"]["synchronization"]["mutexes"][0]
        mutex["name"] = "retrain-{{=workflow.parameters.model}}"

    with pytest.raises(UnsupportedFeature, match="the mutex name"):
        load_template(_variant(tmp_path, change))


@pytest.mark.parametrize(
    ("policy", "outcome", "retried"),
    [
        ("Always", "FAILED", True),
        ("Always", "STOPPED", True),
        ("OnFailure", "FAILED", True),  # the step's process exited non-zero
        ("OnFailure", "STOPPED", False),
        ("OnFailure", None, False),  # lost: an error, not a failure
        ("OnError", "FAILED", False),
        ("OnError", "STOPPED", True),
        ("OnError", None, True),
    ],
)
def test_retry_policies_retry_what_argo_retries(policy, outcome, retried):
    from driftloop.runs._executor import _retried

    assert _retried(policy, outcome) is retried


def test_the_local_executor_takes_a_change_point_and_defaults_it_to_none(tmp_path):
    from driftloop.runs import LocalExecutor
    from driftloop.settings import Settings

    executor = LocalExecutor(Settings(state_dir=tmp_path), TEMPLATE)
    given = {"model": "fraud", "change-point": "2026-06-01T10:00:00+00:00"}
    assert executor.parameters(given)["change-point"] == "2026-06-01T10:00:00+00:00"
    assert executor.parameters({"model": "fraud"})["change-point"] == ""
    with pytest.raises(ValueError, match="unknown workflow parameters: change_point"):
        executor.parameters({"model": "fraud", "change_point": "2026-06-01T10:00:00+00:00"})
