"""The training set built where its rows are: on a Ray-partitioned offline store
(``local-ray``, ``k8s``) the point-in-time join leaves one block per partition in the
cluster (``RayAsOfRetrievalJob.to_partitions``), and the rest of the build runs on those
blocks in Ray tasks, one per partition:

1. this process reads the labelled rows (the entity rows of the join: ids, keys, times,
   label, request inputs; no features) and assigns each its split, its ``ROW`` within the
   split and its regime from the event times alone, as :func:`split_within_regimes` does;
2. a task per block computes the on-demand views, overlays the served features (reading
   only its transactions from the served-features log) and returns the categories its
   train rows hold; the vocabularies are their union;
3. a task per block encodes its rows and writes each split's encoded rows (and the
   unencoded model features) as one parquet part under ``parts_uri``; it returns counts
   and one 64-bit hash per row.

This process then reads back validation and holdout whole, and a sample of train (every
k-th ``ROW``, :data:`SAMPLE_ROWS` at most) for what needs train rows on the driver: the
baseline's fit, the reference profiles and a Ray Tune search. The Ray Train workers read
the train and validation parts themselves (``_train._fit``). Rows, encoding, vocabulary
and data hash are those of the local build on the same data (the hash is of the row
hashes in ``ROW`` order, whichever partition a row was in)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftloop.models import Feature
from driftloop.settings import Settings
from driftloop.training._dataset import (
    LABEL,
    POST,
    ROW,
    SERVED,
    SPLITS,
    TS,
    Dataset,
    check_classes,
    encode_split,
    feature_spec,
    hash_splits,
    offline_entities,
    overlay_served,
    read_served,
    row_hashes,
    split_within_regimes,
    train_categories,
)
from driftloop.training._spec import ModelSpec

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, OnDemandFeatureView

SAMPLE_ROWS = 200_000
"""Train rows a sharded set brings to the driver at most (every k-th ``ROW``)."""
SPLIT = "__split"
HASH = "__hash"
SHARDED = ("train", "validation")
"""The splits the workers read from parts; holdout is only ever scored on the driver."""


@dataclass(frozen=True)
class Assignment:
    """Per labelled row (input order): its split (index into ``SPLITS``), its ``ROW`` in
    that split and, with a change point, whether it is post-change."""

    split: np.ndarray
    row: np.ndarray
    post: np.ndarray | None
    strategy: str


def assign(times: pd.Series, spec: ModelSpec, change_point: datetime | None) -> Assignment:
    """The split of rows at ``times`` (oldest first), by :func:`split_within_regimes`
    itself, run on the times and positions alone."""
    positions = np.arange(len(times), dtype=np.int64)
    frame = pd.DataFrame({TS: times.to_numpy(), "position": positions})
    parts, strategy = split_within_regimes(frame, spec, change_point)
    split = np.empty(len(times), dtype=np.int8)
    row = np.empty(len(times), dtype=np.int64)
    post = np.zeros(len(times), dtype=np.int8) if change_point is not None else None
    for index, name in enumerate(SPLITS):
        taken = parts[name]["position"].to_numpy()
        split[taken] = index
        row[taken] = np.arange(len(taken), dtype=np.int64)
        if post is not None:
            post[taken] = parts[name][POST].to_numpy()
    return Assignment(split, row, post, strategy)


@dataclass(frozen=True)
class PartPlan:
    """What every task of the build needs besides its block."""

    features: list[Feature]
    on_demand: list[tuple[OnDemandFeatureView, list[str]]]
    label: str
    served: str | None
    """The served-features log's directory, when the spec trains on served features."""


def prepare_part(
    plan: PartPlan, block: Any, positions: np.ndarray, assignment: Assignment
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One partition's rows with its model features (on-demand views computed, served
    values overlaid), ``ROW``, split, ``LABEL``, ``POST``, ``SERVED``; and the categories
    of each categorical feature among its train rows."""
    frame = block.to_pandas()
    for odfv, names in plan.on_demand:
        assert odfv.feature_transformation is not None, odfv.name
        transformed = odfv.feature_transformation.transform(frame)
        for name in names:
            frame[name] = transformed[name].to_numpy()
    served = np.zeros(len(frame), dtype=bool)
    if plan.served is not None:
        ids = frame["transaction_id"]
        served = overlay_served(frame, ids, read_served(plan.served, ids), plan.features)
    out = frame[[f.name for f in plan.features]].copy()
    out[ROW] = assignment.row[positions]
    out[SPLIT] = assignment.split[positions]
    out[LABEL] = frame[plan.label].astype("int32").to_numpy()
    if assignment.post is not None:
        out[POST] = assignment.post[positions]
    out[SERVED] = served.astype(np.int8)
    return out, train_categories(out[out[SPLIT] == 0], plan.features)


@dataclass(frozen=True)
class PartSummary:
    """Per split: the part's ``ROW`` values, their row hashes (same order), positives,
    post-change rows and positives, served rows."""

    rows: dict[str, np.ndarray]
    hashes: dict[str, np.ndarray]
    counts: dict[str, dict[str, int]]


def part_uri(root: str, split: str, partition: int, raw: bool = False) -> str:
    return f"{root}/{split}/{'raw' if raw else 'part'}-{partition:05d}.parquet"


def write_part(
    plan: PartPlan, frame: pd.DataFrame, partition: int, vocabularies: dict[str, list[str]],
    root: str,
) -> PartSummary:  # fmt: skip
    """Encode one partition's rows and write each split's part (encoded and unencoded)."""
    from driftloop.training._persist import write_bytes

    encoding = feature_spec(plan.features, vocabularies)
    names = [f.name for f in plan.features]
    rows, hashes, counts = {}, {}, {}
    for index, split in enumerate(SPLITS):
        part = frame[frame[SPLIT] == index].sort_values(ROW, kind="stable")
        encoded = encode_split(part, encoding, part[ROW].to_numpy())
        unencoded = part[[ROW, *names]].reset_index(drop=True)
        for data, raw in ((encoded, False), (unencoded, True)):
            buffer = io.BytesIO()
            data.to_parquet(buffer, index=False)
            write_bytes(part_uri(root, split, partition, raw), buffer.getvalue())
        rows[split] = encoded[ROW].to_numpy()
        hashes[split] = row_hashes(encoded)
        y = encoded[LABEL].to_numpy()
        after = encoded[POST].to_numpy() == 1 if POST in encoded.columns else np.zeros(0, bool)
        counts[split] = {
            "rows": len(encoded),
            "positives": int(y.sum()),
            "post_change_rows": int(after.sum()),
            "post_change_positives": int(y[after].sum()) if len(after) else 0,
            "served_rows": int(part[SERVED].sum()),
        }
    return PartSummary(rows, hashes, counts)


def _read_parts(uris: list[str], every: int = 1) -> pd.DataFrame:
    """The parts' rows in ``ROW`` order; with ``every`` > 1, only rows whose ``ROW`` is a
    multiple of it."""
    from driftloop.training._persist import read_bytes

    frames = []
    for uri in uris:
        frame = pd.read_parquet(io.BytesIO(read_bytes(uri)))
        frames.append(frame[frame[ROW] % every == 0] if every > 1 else frame)
    whole = pd.concat(frames, ignore_index=True).sort_values(ROW, kind="stable")
    return whole.reset_index(drop=True)


def build_sharded(
    spec: ModelSpec,
    settings: Settings,
    store: FeatureStore,
    service: FeatureService,
    features: list[Feature],
    labelled: pd.DataFrame,
    change_point: datetime | None,
    root: str,
) -> Dataset:
    """The training set of ``labelled`` on the Ray-partitioned store (see the module)."""
    import ray

    from driftloop.features import RayAsOfRetrievalJob, split_service

    root = root.rstrip("/")
    assignment = assign(labelled[TS], spec, change_point)
    stored, on_demand = split_service(store, service)
    refs = [f"{view.name}:{name}" for view, names in stored for name in names]
    job = store.get_historical_features(entity_df=offline_entities(service, labelled),
                                        features=refs)  # fmt: skip
    if not isinstance(job, RayAsOfRetrievalJob):
        raise TypeError(f"expected the Ray as-of store's job, got {type(job).__name__}")
    partitioned = job.to_partitions()  # connects to Ray
    served = spec.served_uri(settings) if spec.training_features == "served" else None
    plan = PartPlan(features, on_demand, spec.label, served)
    shared = ray.put(plan), ray.put(assignment)
    prepare: Any = ray.remote(prepare_part).options(num_returns=2, num_cpus=1)
    prepared: list[list[Any]] = [prepare.remote(shared[0], block, positions, shared[1])
                for block, positions in zip(partitioned.blocks, partitioned.rows,
                                            strict=True)]  # fmt: skip
    vocabularies: dict[str, set[str]] = {}
    for categories in ray.get([categories for _, categories in prepared]):
        for name, values in categories.items():
            vocabularies.setdefault(name, set()).update(values)
    vocab = {name: sorted(values) for name, values in vocabularies.items()}
    write = ray.remote(write_part).options(num_cpus=1)
    summaries: list[PartSummary] = ray.get(
        [write.remote(shared[0], frame, p, vocab, root) for p, (frame, _) in enumerate(prepared)]
    )
    del prepared, partitioned  # the blocks are no longer needed in the cluster
    return _assemble(features, vocab, summaries, assignment, change_point, len(labelled), root,
                     spec.training_features == "served")  # fmt: skip


def _assemble(
    features: list[Feature], vocab: dict[str, list[str]],
    summaries: list[PartSummary], assignment: Assignment, change_point: datetime | None,
    labelled_rows: int, root: str, served: bool,
) -> Dataset:  # fmt: skip
    """The dataset from the parts' summaries: hash and totals from all rows, validation
    and holdout read whole, train as a sample; ``served``: the spec trains on served
    features (the served-row counts are then reported, zeros included)."""
    names = [f.name for f in features]
    columns = [ROW, *names, LABEL, *([POST] if assignment.post is not None else [])]
    totals: dict[str, dict[str, int]] = {}
    hashed: dict[str, tuple[int, list[str], np.ndarray]] = {}
    for split in SPLITS:
        rows = np.concatenate([s.rows[split] for s in summaries])
        hashes = np.concatenate([s.hashes[split] for s in summaries])
        hashed[split] = (len(rows), columns, hashes[np.argsort(rows, kind="stable")])
        totals[split] = {key: sum(s.counts[split][key] for s in summaries)
                         for key in summaries[0].counts[split]}  # fmt: skip
    check_classes({n: totals[n]["positives"] for n in SPLITS},
                  {n: totals[n]["rows"] for n in SPLITS})  # fmt: skip
    count = len(summaries)
    every = {"train": max(1, math.ceil(totals["train"]["rows"] / SAMPLE_ROWS))}
    splits, raw = {}, {}
    for split in SPLITS:
        step = every.get(split, 1)
        splits[split] = _read_parts([part_uri(root, split, p) for p in range(count)], step)
        unencoded = _read_parts([part_uri(root, split, p, raw=True) for p in range(count)], step)
        raw[split] = unencoded[names]
    served_rows = {n: totals[n].pop("served_rows") for n in SPLITS}
    return Dataset(
        features, vocab, splits, hash_splits(hashed), raw, labelled_rows,
        change_point if assignment.post is not None else None, assignment.strategy,
        served_rows if served else None,
        shards={split: [part_uri(root, split, p) for p in range(count)] for split in SHARDED},
        totals=totals,
    )  # fmt: skip
