"""The model store: content-addressed versions, refused pickles, atomic writes, digests.

xgboost is not installed in the workspace's environment, so the model files here are
hand-made in XGBoost's native layouts (JSON, and UBJSON encoded below); the store only
ever treats them as bytes.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from driftloop.models import (
    DigestMismatch,
    FeatureSpec,
    Lineage,
    ModelMetadata,
    ModelStore,
    RefusedModel,
    VersionNotFound,
    model_format,
)
from driftloop.models._fs import Location
from driftloop.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def xgboost_document(base_score: float = 0.5) -> dict[str, object]:
    """The shape of ``Booster.save_model("x.json")`` for one tree on two features."""
    tree = {
        "base_weights": [0.0, -0.4, 0.4],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [0, 0, 0],
        "id": 0,
        "left_children": [1, -1, -1],
        "loss_changes": [3.2, 0.0, 0.0],
        "parents": [2147483647, 0, 0],
        "right_children": [2, -1, -1],
        "split_conditions": [120.0, -0.4, 0.4],
        "split_indices": [0, 0, 0],
        "split_type": [0, 0, 0],
        "sum_hessian": [5.0, 2.5, 2.5],
        "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "3"},
    }
    return {
        "learner": {
            "attributes": {},
            "feature_names": ["amount", "txn_count_1h"],
            "feature_types": ["float", "float"],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1"},
                    "iteration_indptr": [0, 1],
                    "tree_info": [0],
                    "trees": [tree],
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": str(base_score),
                "num_class": "0",
                "num_feature": "2",
                "num_target": "1",
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [2, 1, 3],
    }


def xgboost_json(base_score: float = 0.5) -> bytes:
    return json.dumps(xgboost_document(base_score)).encode()


def ubjson(value: object) -> bytes:
    """Just enough UBJSON (as XGBoost writes it) to encode a model document."""
    if isinstance(value, dict):
        body = b"".join(_ubj_key(k) + ubjson(v) for k, v in value.items())
        return b"{" + body + b"}"
    if isinstance(value, list):
        return b"[" + b"".join(ubjson(v) for v in value) + b"]"
    if isinstance(value, str):
        return b"S" + _ubj_key(value)
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"d" + struct.pack(">f", value)
    raise TypeError(type(value))


def _ubj_key(text: str) -> bytes:
    raw = text.encode()
    return b"L" + struct.pack(">q", len(raw)) + raw


FEATURES = FeatureSpec.model_validate(
    {
        "features": [
            {"name": "amount", "type": "float"},
            {"name": "txn_count_1h", "type": "float"},
        ],
        "preprocessing": {"amount": {"clip": [0, 10000]}},
    }
)


def lineage(**changes: object) -> Lineage:
    fields: dict[str, object] = {
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "feature_service": "fraud_v1",
        "feature_views_hash": "fv-" + "a" * 16,
        "training_window": {"start": T0, "end": T0 + timedelta(days=7)},
        "rows": {"train": 700, "validation": 150, "holdout": 150},
        "data_hash": "b" * 64,
        "params": {"max_depth": 4, "eta": 0.1, "objective": "binary:logistic"},
        "metrics": {"auc": 0.91, "logloss": 0.21},
        "packages": {"python": "3.11.7", "xgboost": "2.1.3", "ray": "2.60.0"},
        "seed": 7,
        "trigger_event_id": "drift-1",
        "gate": {"passed": True, "reasons": ["auc +0.02 over champion"]},
        "extra": {"note": "unit test"},
    }
    fields.update(changes)
    return Lineage.model_validate(fields)


def put(store: ModelStore, model: bytes, *, filename: str = "x.json", **kwargs: object):
    kwargs.setdefault("features", FEATURES)
    kwargs.setdefault("lineage", lineage())
    return store.put("fraud", model, filename=filename, **kwargs)  # type: ignore[arg-type]


def visible_entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "fraud").iterdir() if not p.name.startswith("."))


def test_a_version_round_trips_with_all_its_parts(tmp_path):
    store = ModelStore(str(tmp_path))
    model = xgboost_json()
    refs = {"features.bin": b"\x00whylogs-features", "scores.bin.gz": b"not gzipped"}
    stored = put(store, model, references=refs, created_at=T0)

    again = store.get("fraud", stored.version)
    assert again.read_model() == model
    assert again.model_file == "model.json"
    assert again.read_features() == FEATURES
    assert again.metadata.lineage == lineage()
    assert again.metadata.created_at == T0
    assert again.metadata.model_name == "fraud"
    assert again.references == ["features.bin", "scores.bin.gz"]
    assert {n: again.read_reference(n) for n in again.references} == refs

    version_dir = tmp_path / "fraud" / stored.version
    assert again.uri == str(version_dir)
    assert sorted(p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*")) == [
        "_COMPLETE",
        "features.json",
        "metadata.json",
        "model.json",
        "reference",
        "reference/features.bin",
        "reference/scores.bin.gz",
    ]
    assert (version_dir / "reference" / "scores.bin.gz").read_bytes() == b"not gzipped"
    on_disk = json.loads((version_dir / "metadata.json").read_text())
    assert on_disk["sha256"] == stored.sha256 and on_disk["git_dirty"] is False
    assert visible_entries(tmp_path) == ["index.json", stored.version]
    assert store.models() == ["fraud"]


def test_the_version_is_the_sha256_of_the_model_file(tmp_path):
    store = ModelStore(str(tmp_path))
    model = xgboost_json()
    digest = hashlib.sha256(model).hexdigest()
    stored = put(store, model)
    assert stored.sha256 == stored.metadata.sha256 == digest
    assert stored.version == f"sha256-{digest[:16]}"
    assert hashlib.sha256(Path(stored.model_uri).read_bytes()).hexdigest() == digest
    assert store.get("fraud", digest).version == stored.version
    with pytest.raises(VersionNotFound):
        store.get("fraud", digest[:-1] + ("0" if digest[-1] != "0" else "1"))


def test_putting_the_same_model_again_is_a_no_op(tmp_path):
    store = ModelStore(str(tmp_path))
    model = xgboost_json()
    first = put(store, model, created_at=T0)
    second = put(store, model, lineage=lineage(seed=8), created_at=T0 + timedelta(days=1))
    assert second.version == first.version
    assert second.metadata == first.metadata  # the stored lineage is kept
    assert [v.version for v in store.list("fraud")] == [first.version]
    assert visible_entries(tmp_path) == ["index.json", first.version]
    assert not [p for p in (tmp_path / "fraud").iterdir() if p.name.startswith(".staging")]


def test_a_ubj_model_is_stored_as_model_ubj(tmp_path):
    store = ModelStore(str(tmp_path))
    model = ubjson(xgboost_document())
    stored = put(store, model, filename="booster.ubj")
    assert stored.model_file == "model.ubj"
    assert store.get("fraud", stored.version).read_model() == model


@pytest.mark.parametrize("filename", ["model.pkl", "model.json", "model.ubj", "model"])
def test_a_pickle_is_refused_whatever_it_is_called(tmp_path, filename):
    store = ModelStore(str(tmp_path / "store"))
    pickled = pickle.dumps({"learner": xgboost_document()})
    with pytest.raises(RefusedModel):
        put(store, pickled, filename=filename)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("model.json", b'{"learner": {"attributes": '),  # truncated
        ("model.json", b'{"version": [2, 1, 3]}'),  # JSON, but no learner
        ("model.json", b"[1, 2, 3]"),
        ("model.json", b""),
        ("model.ubj", xgboost_json()),  # JSON text under a UBJ name
        ("model.json", ubjson(xgboost_document())),  # UBJ under a JSON name
        ("model.ubj", ubjson({"version": [2, 1, 3]})),
        ("model.txt", xgboost_json()),
    ],
)
def test_malformed_model_files_are_refused(tmp_path, filename, content):
    store = ModelStore(str(tmp_path / "store"))
    with pytest.raises(RefusedModel):
        put(store, content, filename=filename)
    assert not (tmp_path / "store").exists()


def test_model_format_judges_name_and_bytes():
    assert model_format("x.json", xgboost_json()) == "json"
    assert model_format("dir/X.UBJ", ubjson(xgboost_document())) == "ubj"


def test_a_crash_before_the_rename_leaves_no_version(tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path))
    kept = put(store, xgboost_json(0.1), created_at=T0)

    def crash(*args, **kwargs):
        raise OSError("killed mid-write")

    monkeypatch.setattr(ModelStore, "_publish", crash)
    # As if the process died: not even the cleanup of the staging directory runs.
    monkeypatch.setattr(Location, "delete_quietly", lambda self, path: None)
    with pytest.raises(OSError, match="killed"):
        put(store, xgboost_json(0.2), created_at=T0 + timedelta(days=1))

    staged = [p for p in (tmp_path / "fraud").iterdir() if p.name.startswith(".staging")]
    assert len(staged) == 1 and (staged[0] / "_COMPLETE").exists()
    assert [v.version for v in store.list("fraud")] == [kept.version]
    latest = store.latest("fraud")
    assert latest is not None and latest.version == kept.version
    assert store.models() == ["fraud"]

    monkeypatch.undo()
    redone = put(store, xgboost_json(0.2), created_at=T0 + timedelta(days=1))
    latest = store.latest("fraud")
    assert latest is not None and latest.version == redone.version
    store.verify("fraud", redone.version)


@pytest.mark.parametrize("uri", ["local", "mock:///models"])
def test_a_crash_before_the_marker_leaves_no_version(tmp_path, monkeypatch, uri):
    # mock:// is pyarrow's in-memory filesystem: no directory renames, so the store writes
    # in place and relies on the marker alone, as on an object store.
    store = ModelStore(str(tmp_path) if uri == "local" else uri)
    model = xgboost_json(0.3)

    def crash(*args, **kwargs):
        raise OSError("killed before the marker")

    with monkeypatch.context() as patch:
        patch.setattr(ModelStore, "_commit", crash)
        with pytest.raises(OSError, match="marker"):
            put(store, model)

    version = f"sha256-{hashlib.sha256(model).hexdigest()[:16]}"
    assert store.list("fraud") == []
    assert store.latest("fraud") is None
    with pytest.raises(VersionNotFound):
        store.get("fraud", version)
    assert put(store, model).read_model() == model
    assert [v.version for v in store.list("fraud")] == [version]


def test_latest_is_the_newest_complete_version_by_created_at(tmp_path):
    store = ModelStore(str(tmp_path))
    days = [3, 1, 4, 2]
    versions = {
        day: put(store, xgboost_json(day / 10), created_at=T0 + timedelta(days=day)).version
        for day in days
    }
    expected = [versions[d] for d in sorted(days)]
    assert [v.version for v in store.list("fraud")] == expected
    latest = store.latest("fraud")
    assert latest is not None and latest.version == versions[4]
    assert store.latest("other") is None and store.list("other") == []


def test_listing_survives_a_missing_stale_or_corrupt_index(tmp_path):
    store = ModelStore(str(tmp_path))
    stored = [
        put(store, xgboost_json(i / 10), created_at=T0 + timedelta(days=i)).version
        for i in range(3)
    ]
    index = tmp_path / "fraud" / "index.json"
    document = json.loads(index.read_text())
    assert [v["version"] for v in document["versions"]] == stored

    document["versions"] = document["versions"][:1]  # stale: a lost update
    index.write_text(json.dumps(document))
    assert [v.version for v in store.list("fraud")] == stored
    index.write_text("{not json")
    assert [v.version for v in store.list("fraud")] == stored
    index.unlink()
    latest = store.latest("fraud")
    assert latest is not None and latest.version == stored[-1]
    assert [v.version for v in store.reindex("fraud")] == stored
    assert len(json.loads(index.read_text())["versions"]) == 3


def test_a_flipped_byte_is_a_digest_mismatch(tmp_path):
    store = ModelStore(str(tmp_path))
    stored = put(store, xgboost_json())
    path = Path(stored.model_uri)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()

    with pytest.raises(DigestMismatch) as caught:
        store.get("fraud", stored.version).read_model()
    assert caught.value.expected == stored.sha256 and caught.value.actual == actual
    assert stored.sha256 in str(caught.value) and actual in str(caught.value)
    with pytest.raises(DigestMismatch):
        store.verify("fraud", stored.version)


def test_a_tampered_reference_fails_verification(tmp_path):
    store = ModelStore(str(tmp_path))
    stored = put(store, xgboost_json(), references={"features.bin": b"profile"})
    Path(stored.reference_uri("features.bin")).write_bytes(b"profilf")
    assert store.get("fraud", stored.version).read_model() == xgboost_json()
    with pytest.raises(DigestMismatch, match=r"features\.bin"):
        store.verify("fraud", stored.version)


def test_a_file_uri_store_is_the_same_store(tmp_path):
    uri = tmp_path.as_uri()
    assert uri.startswith("file:///")
    store = ModelStore(uri)
    stored = put(store, xgboost_json(), references={"scores.bin": b"scores"})
    assert store.uri == uri
    assert stored.model_uri == f"{uri}/fraud/{stored.version}/model.json"
    assert store.verify("fraud", stored.version).read_reference("scores.bin") == b"scores"
    by_path = ModelStore(str(tmp_path)).latest("fraud")
    assert by_path is not None and by_path.read_model() == xgboost_json()


def test_an_in_memory_filesystem_round_trips():
    store = ModelStore("mock:///models")
    stored = put(store, xgboost_json(), references={"features.bin": b"p"})
    assert stored.uri.startswith("mock://")
    latest = store.latest("fraud")
    assert latest is not None and latest.read_reference("features.bin") == b"p"
    store.verify("fraud", stored.version)


def test_metadata_refuses_unknown_fields():
    with pytest.raises(ValidationError, match="extra"):
        lineage(learning_rate=0.1)
    with pytest.raises(ValidationError, match="finite"):
        lineage(metrics={"auc": float("nan")})
    stored = ModelMetadata.model_validate(
        {
            **lineage().model_dump(),
            "model_name": "fraud",
            "version": "sha256-" + "c" * 16,
            "sha256": "c" * 64,
            "created_at": T0,
        }
    )
    with pytest.raises(ValidationError, match="extra"):
        ModelMetadata.model_validate({**stored.model_dump(), "owner": "someone"})
    with pytest.raises(ValidationError, match="does not match"):
        ModelMetadata.model_validate({**stored.model_dump(), "version": "sha256-" + "d" * 16})
    with pytest.raises(ValidationError, match="timezone"):
        ModelMetadata.model_validate({**stored.model_dump(), "created_at": datetime(2026, 1, 1)})


def test_names_that_could_escape_or_hide_are_refused(tmp_path):
    store = ModelStore(str(tmp_path))
    with pytest.raises(ValueError, match="model name"):
        store.put("../x", xgboost_json(), filename="m.json", features=FEATURES, lineage=lineage())
    with pytest.raises(ValueError, match="reference name"):
        put(store, xgboost_json(), references={"../../etc": b""})
    with pytest.raises(ValueError, match="version id"):
        store.get("fraud", "latest")


def test_from_settings_resolves_a_relative_root_and_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTLOOP_MODEL_STORE_URI", raising=False)
    store = ModelStore.from_settings(Settings())
    assert store.uri == str(tmp_path / ".driftloop" / "models")
    assert list(tmp_path.iterdir()) == []
    assert store.list("fraud") == [] and store.models() == []
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_loses_the_rename_race_returns_the_winner(tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path))
    model = xgboost_json()
    first = put(store, model, created_at=T0)
    # The second writer checked before the first had finished, then staged its own copy.
    monkeypatch.setattr(ModelStore, "_existing", lambda self, *args: None)
    second = put(store, model, lineage=lineage(seed=9), created_at=T0 + timedelta(hours=1))
    assert second.metadata == first.metadata
    assert visible_entries(tmp_path) == ["index.json", first.version]
    assert not [p for p in (tmp_path / "fraud").iterdir() if p.name.startswith(".")]


def test_an_incomplete_directory_in_the_way_is_replaced(tmp_path):
    store = ModelStore(str(tmp_path))
    model = xgboost_json()
    junk = tmp_path / "fraud" / f"sha256-{hashlib.sha256(model).hexdigest()[:16]}"
    junk.mkdir(parents=True)
    (junk / "model.json").write_bytes(b"half")
    stored = put(store, model)
    assert store.verify("fraud", stored.version).read_model() == model
