"""A lint of deploy/image/Containerfile and Containerfile.gpu, read as text (no hadolint
here, and podman has no dry run): known instructions only, no ADD, a numeric non-root USER,
the OCI revision and version labels, `driftloop` as the entrypoint, uv kept out of every
layer, every workspace member's pyproject.toml copied before the dependencies are
installed, and pins that agree with uv.lock. The CPU image is also built and run by
tests/image; the GPU one cannot be built here (its CUDA base is in a registry), so this is
all that checks it."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "deploy/image"
CONTAINERFILES = ["Containerfile", "Containerfile.gpu"]
KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse(text: str) -> list[list[Instruction]]:
    """Instructions by stage; the global ARGs before the first FROM are stage 0."""
    stages: list[list[Instruction]] = [[]]
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction, as Docker allows
        if not pending:
            start = number
        pending += " " + stripped.removesuffix("\\")
        if stripped.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(args.split()), start)
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
        pending = ""
    assert not pending, "the file ends inside a continued instruction"
    return stages


def members() -> list[str]:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    return sorted(
        p.relative_to(ROOT).as_posix()
        for pattern in workspace["members"]
        for p in ROOT.glob(f"{pattern}/pyproject.toml")
    )


@pytest.fixture(params=CONTAINERFILES)
def stages(request: pytest.FixtureRequest) -> list[list[Instruction]]:
    return parse((IMAGE_DIR / request.param).read_text())


def test_only_known_instructions_and_no_add(stages):
    for instruction in (i for stage in stages for i in stage):
        assert instruction.keyword in KNOWN, instruction
        # ADD fetches URLs and unpacks archives unasked; COPY does neither.
        assert instruction.keyword != "ADD", instruction


def test_every_from_names_a_stage_or_a_pinned_base(stages):
    global_args = dict(
        i.args.split("=", 1) for i in stages[0] if i.keyword == "ARG" and "=" in i.args
    )
    names: set[str] = set()
    for stage in stages[1:]:
        image, _, alias = stage[0].args.partition(" AS ")
        if image not in names:
            ref = re.fullmatch(r"\$\{(\w+)\}", image)
            assert ref and ref.group(1) in global_args, f"FROM {image}: a base ARG with a default"
            default = global_args[ref.group(1)]
            # localhost/...: made by build.sh and passed as --build-arg; others pin a version.
            pinned = re.search(r":[\w.-]*\d", default) and not default.endswith(":latest")
            assert pinned or default.startswith("localhost/"), default
        if alias:
            names.add(alias.strip())


def test_the_image_runs_as_a_numeric_user_that_is_not_root(stages):
    final = stages[-1]
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, users[-1]  # numeric: runAsNonRoot checks it
    assert all(i.line < users[-1].line for i in final if i.keyword == "RUN")


def test_labels_carry_revision_and_version_from_build_args(stages):
    final = stages[-1]
    args = {i.args.split("=")[0] for i in final if i.keyword == "ARG"}
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert {"REVISION", "VERSION"} <= args


def test_driftloop_is_the_entrypoint(stages):
    entrypoints = [i for i in stages[-1] if i.keyword == "ENTRYPOINT"]
    assert [json.loads(e.args) for e in entrypoints] == [["driftloop"]]


def test_uv_is_bind_mounted_never_copied_into_the_image(stages):
    final = stages[-1]
    for i in final:
        if i.keyword == "COPY":
            assert "--from" not in i.args, i  # the image copies from the context only
        if i.keyword == "RUN" and re.search(r"\buv (sync|pip|python)\b", i.args):
            assert "--mount=type=bind,from=uv," in i.args, i
            assert "--mount=type=cache,target=/var/cache/uv" in i.args, i


def test_every_member_pyproject_is_copied_before_the_dependencies(stages):
    final = stages[-1]
    first_sync = next(i.line for i in final if i.keyword == "RUN" and "uv sync" in i.args)
    copied = {
        i.args.split()[0]
        for i in final
        if i.keyword == "COPY" and i.line < first_sync and i.args.endswith("/")
    }
    assert copied >= set(members()), set(members()) - copied


def test_build_sh_passes_only_declared_args():
    declared = {
        i.args.split("=")[0]
        for stage in parse((IMAGE_DIR / "Containerfile").read_text())
        for i in stage
        if i.keyword == "ARG"
    }
    passed = set(re.findall(r"--build-arg (\w+)=", (IMAGE_DIR / "build.sh").read_text()))
    assert passed >= {"BASE", "VERSION", "REVISION", "UV_VERSION"}
    assert passed <= declared, passed - declared


def test_the_gpu_xgboost_pins_agree_with_the_lock():
    """The GPU image swaps xgboost-cpu for xgboost at the version the lock gives Python
    3.11, with the NCCL that version depends on."""
    stages = parse((IMAGE_DIR / "Containerfile.gpu").read_text())
    arg = next(i.args for i in stages[-1] if i.args.startswith("XGBOOST_GPU="))
    pins = dict(p.split("==") for p in arg.split("=", 1)[1].strip('"').split())
    lock = tomllib.loads((ROOT / "uv.lock").read_text())["package"]

    def for_py311(name: str) -> str:
        [version] = [
            p["version"]
            for p in lock
            if p["name"] == name
            and any("< '3.12'" in m for m in p.get("resolution-markers", ["< '3.12'"]))
        ]
        return str(version)

    assert pins == {
        "xgboost": for_py311("xgboost-cpu"),
        "nvidia-nccl-cu12": for_py311("nvidia-nccl-cu12"),
    }
    assert for_py311("xgboost") == for_py311("xgboost-cpu")


def test_the_context_is_an_allowlist_without_state_or_caches():
    ignore = (ROOT / ".containerignore").read_text().split("\n")
    rules = [r.strip() for r in ignore if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "the context starts empty and names what it lets in"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    assert not allowed & {".git", ".venv", ".driftloop", "tests", "bench"}
    assert {"**/.venv", "**/.driftloop", "**/__pycache__"} <= set(rules)
    assert (ROOT / ".dockerignore").resolve() == (ROOT / ".containerignore").resolve()
