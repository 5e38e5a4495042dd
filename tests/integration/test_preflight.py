from __future__ import annotations

import shutil
import stat

import pytest

from driftloop.stack import MissingPrerequisite, find_java, find_maven


def _fake_java(directory, version_line: str) -> None:
    java = directory / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)


def test_no_java_says_what_to_install(tmp_path):
    with pytest.raises(MissingPrerequisite, match=r"Java 17\+.*install OpenJDK 17"):
        find_java(path=str(tmp_path))


def test_old_java_is_refused_with_its_version(tmp_path):
    _fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')
    with pytest.raises(MissingPrerequisite, match="is Java 11; Kafka needs Java 17"):
        find_java(path=str(tmp_path))


def test_legacy_version_scheme_is_read(tmp_path):
    _fake_java(tmp_path, 'java version "1.8.0_402"')
    with pytest.raises(MissingPrerequisite, match="is Java 8"):
        find_java(path=str(tmp_path))


def test_no_maven_says_what_to_install(tmp_path):
    with pytest.raises(MissingPrerequisite, match=r"install Maven .*apt-get install maven"):
        find_maven(path=str(tmp_path))


def test_the_machines_java_is_accepted():
    if shutil.which("java") is None:
        pytest.skip("no java on this machine")
    assert find_java().name == "java"


def test_cluster_ids_never_look_like_an_option():
    from driftloop.stack._kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
    assert len(set(ids)) == len(ids)
