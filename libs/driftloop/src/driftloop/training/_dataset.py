"""The training set of a window: labelled rows, point-in-time features, encoding, split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import JsonValue

from driftloop.models import (
    Feature,
    FeatureSpec,
    TrainingWindow,
    categorical_preprocessing,
    encode_features,
)
from driftloop.settings import Settings
from driftloop.training._spec import ModelSpec

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

TS = "event_timestamp"
LABEL = "label"
ROW = "row"
POST = "post_change"
"""Column names of the frames handed to the workers (besides the features); ``POST``
(1 for a row at or after the change point) only when the dataset has a change point."""
SERVED = "served"
"""A column of the unencoded join only: 1 where the row's features are the served ones."""
SPLITS = ("train", "validation", "holdout")
TIME_SPLIT, WITHIN_REGIMES = "time", "within-regimes"
"""How the rows were split: by event time alone, or by time within each regime."""


@dataclass(frozen=True)
class Dataset:
    """Encoded features and labels, split by time, ready for XGBoost."""

    features: list[Feature]
    vocabularies: dict[str, list[str]]
    splits: dict[str, pd.DataFrame]  # each: ROW, features..., LABEL; sorted by time
    data_hash: str
    raw: dict[str, pd.DataFrame] = field(default_factory=dict)
    """The same rows before encoding (model features only): what serving logs."""
    labelled_rows: int = 0
    """Labelled transactions in the window (before any row was dropped)."""
    change_point: datetime | None = None
    """When the regime the dataset was built for began; the splits then carry ``POST``."""
    strategy: str = TIME_SPLIT
    served_rows: dict[str, int] | None = None
    """Rows per split whose features are the ones the endpoint served (None: the spec
    trains on offline point-in-time features only)."""
    shards: dict[str, list[str]] | None = None
    """For a set built where its rows are (a Ray-partitioned offline store, see
    ``_sharded``): per split, ``train`` and ``validation``, the URIs of its encoded parquet
    parts, one per partition, which the Ray Train workers read. ``splits["train"]`` and
    ``raw["train"]`` then hold a sample (every k-th row, :data:`SAMPLE_ROWS` at most), and
    :attr:`totals` the whole split's counts."""
    totals: dict[str, dict[str, int]] | None = None
    """Per split of a sharded set: ``rows``, ``positives``, and with a change point
    ``post_change_rows`` and ``post_change_positives``."""

    def rows(self, split: str) -> int:
        """Rows of ``split``: the whole split's, also when only a sample of it is held."""
        if self.totals is not None:
            return self.totals[split]["rows"]
        return len(self.splits[split])

    def positives(self, split: str) -> int:
        if self.totals is not None:
            return self.totals[split]["positives"]
        return int(self.splits[split][LABEL].sum())

    def post_change(self, split: str) -> np.ndarray | None:
        """Which rows of ``split`` are at or after the change point (None: no change point)."""
        part = self.splits[split]
        return part[POST].to_numpy() == 1 if POST in part.columns else None

    def regimes(self) -> dict[str, JsonValue]:
        """The lineage of the split: strategy, change point, post-change rows and positives
        per split."""
        summary: dict[str, JsonValue] = {
            "strategy": self.strategy,
            "change_point": self.change_point.isoformat() if self.change_point else None,
        }
        for name in SPLITS:
            post = self.post_change(name)
            if post is None:
                continue
            if self.totals is not None:
                counts = self.totals[name]
                keys = ("post_change_rows", "post_change_positives")
                summary[name] = {key: counts[key] for key in keys}
                continue
            y = self.splits[name][LABEL].to_numpy()
            summary[name] = {"post_change_rows": int(post.sum()),
                             "post_change_positives": int(y[post].sum())}  # fmt: skip
        summary["features"] = {
            "source": "offline" if self.served_rows is None else "served-where-logged",
            "served_rows": dict(self.served_rows) if self.served_rows is not None else None,
        }
        return summary

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature_spec(self) -> FeatureSpec:
        return feature_spec(self.features, self.vocabularies)


def feature_spec(features: list[Feature], vocabularies: dict[str, list[str]]) -> FeatureSpec:
    """The model's inputs and their encoding."""
    return FeatureSpec(features=features, preprocessing=categorical_preprocessing(vocabularies))


def train_categories(frame: pd.DataFrame, features: list[Feature]) -> dict[str, list[str]]:
    """Per categorical feature, the values ``frame`` (train rows) holds, as text, sorted:
    its vocabulary."""
    return {
        f.name: sorted({str(v) for v in frame[f.name].dropna()})
        for f in features
        if f.type == "categorical"
    }


def read_labelled(spec: ModelSpec, settings: Settings, window: TrainingWindow) -> pd.DataFrame:
    """Transactions of the window whose label had arrived by its end, oldest first."""
    history = pd.read_parquet(spec.history_uri(settings))
    streamed = spec.labelled_uri(settings)
    if streamed is not None:
        # Labelled rows the stream service joined after the backfill; a backfilled row wins.
        more = pd.read_parquet(streamed)
        if not more.empty:
            history = pd.concat([history, more[history.columns]], ignore_index=True)
            history = history.drop_duplicates("transaction_id", keep="first")
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    ts, labelled_at = history[TS], history["label_timestamp"]
    keep = (ts >= start) & (ts < end) & labelled_at.notna() & (labelled_at <= end)
    out = history.loc[keep].sort_values([TS, "transaction_id"], kind="stable")
    return out.reset_index(drop=True)


def read_served(directory: str, transaction_ids: pd.Series) -> dict[str, str]:
    """{transaction id: JSON of the features it was first served with} for the given
    transactions, from the stream service's served-features log."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = pa.array(transaction_ids.astype(str).unique())
    table = ds.dataset(directory, format="parquet").to_table(
        columns=["transaction_id", "features"], filter=pc.field("transaction_id").isin(wanted)
    )
    served: dict[str, str] = {}
    for tid, vector in zip(table["transaction_id"].to_pylist(), table["features"].to_pylist(),
                           strict=True):  # fmt: skip
        served.setdefault(tid, vector)  # files in offset order: the first prediction wins
    return served


def overlay_served(
    joined: pd.DataFrame, transaction_ids: pd.Series, served: dict[str, str],
    features: list[Feature],
) -> np.ndarray:  # fmt: skip
    """Replace, in place, the point-in-time features of rows the endpoint served with the
    values it served (a feature the logged vector lacks keeps its offline value); return
    which rows were served."""
    vectors = [served.get(str(t)) for t in transaction_ids]
    mask = np.array([v is not None for v in vectors], dtype=bool)
    if not mask.any():
        return mask
    rows = np.flatnonzero(mask)
    parsed = [json.loads(v) for v in vectors if v is not None]
    for feature in features:
        present = np.array([feature.name in d for d in parsed], dtype=bool)
        if not present.any():
            continue
        values = [d[feature.name] for d, has in zip(parsed, present, strict=True) if has]
        offline = joined[feature.name]
        if feature.type == "categorical":
            text = offline.astype(object).to_numpy(copy=True)
            text[rows[present]] = [None if v is None else str(v) for v in values]
            joined[feature.name] = pd.Series(text, index=joined.index).astype(offline.dtype)
        else:
            numbers = pd.to_numeric(offline, errors="coerce").to_numpy("float64", copy=True)
            numbers[rows[present]] = [np.nan if v is None else float(v) for v in values]
            result = pd.Series(numbers, index=joined.index)
            if pd.api.types.is_integer_dtype(offline.dtype):  # keep integers integers
                result = result.astype("Int64" if result.isna().any() else offline.dtype)
            joined[feature.name] = result
    return mask


def _feature_type(dtype: object) -> str:
    name = str(dtype).lower()
    if "string" in name:
        return "categorical"
    if "int" in name or "bool" in name:
        return "int"
    return "float"


def model_features(spec: ModelSpec, service: FeatureService) -> list[Feature]:
    """The service's features in its order, less the spec's exclusions."""
    out = []
    for projection in service.feature_view_projections:
        for served in projection.features:
            if served.name not in spec.exclude_features:
                out.append(Feature(name=served.name, type=_feature_type(served.dtype)))
    return out


def split_by_time(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, pd.DataFrame]:
    """Train, validation and holdout by event-time quantiles; the holdout is the latest."""
    ts = frame[TS].astype("int64").to_numpy()
    first = np.quantile(ts, spec.split.train, method="lower")
    second = np.quantile(ts, spec.split.train + spec.split.validation, method="lower")
    parts: dict[str, pd.DataFrame] = {
        "train": frame[ts <= first],
        "validation": frame[(ts > first) & (ts <= second)],
        "holdout": frame[ts > second],
    }
    return {name: part.reset_index(drop=True) for name, part in parts.items()}


def split_within_regimes(
    frame: pd.DataFrame, spec: ModelSpec, change_point: datetime | None
) -> tuple[dict[str, pd.DataFrame], str]:
    """The split, and which strategy made it.

    Without a change point: :func:`split_by_time`, unchanged. With one, each row is
    flagged ``POST`` (at or after it or not); when both regimes have rows, each is split
    by time with the spec's fractions and the two are concatenated per split (before,
    then after: time order kept), so the new regime is in train, validation and holdout
    alike instead of mostly in the latest slices."""
    if change_point is None:
        return split_by_time(frame, spec), TIME_SPLIT
    post = (frame[TS] >= pd.Timestamp(change_point)).to_numpy()
    flagged = frame.assign(**{POST: post.astype(np.int8)})
    if post.all() or not post.any():
        return split_by_time(flagged, spec), TIME_SPLIT
    before, after = split_by_time(flagged[~post], spec), split_by_time(flagged[post], spec)
    parts = {name: pd.concat([before[name], after[name]], ignore_index=True) for name in SPLITS}
    return parts, WITHIN_REGIMES


def row_hashes(part: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of an encoded split (each depends on its row alone)."""
    hashes: np.ndarray = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return hashes


def hash_splits(parts: dict[str, tuple[int, list[str], np.ndarray]]) -> str:
    """The data hash from each split's (rows, columns, row hashes in ``ROW`` order)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        rows, columns, hashes = parts[name]
        digest.update(f"{name}:{rows}:{','.join(columns)};".encode())
        digest.update(hashes.tobytes())
    return digest.hexdigest()


def frame_hash(splits: dict[str, pd.DataFrame]) -> str:
    return hash_splits(
        {name: (len(part), list(part.columns), row_hashes(part)) for name, part in splits.items()}
    )


def encode_split(part: pd.DataFrame, feature_spec: FeatureSpec, rows: np.ndarray) -> pd.DataFrame:
    """A split's rows as the workers get them: ``ROW`` (``rows``), the encoded features,
    ``LABEL`` and, with a change point, ``POST``."""
    part = part.reset_index(drop=True)
    encoded = encode_features(part, feature_spec)
    encoded.insert(0, ROW, rows)
    encoded[LABEL] = part[LABEL].to_numpy()
    if POST in part.columns:
        encoded[POST] = part[POST].to_numpy()
    return encoded


def check_classes(positives: dict[str, int], rows: dict[str, int]) -> None:
    for name in SPLITS:
        if not 0 < positives[name] < rows[name]:
            raise ValueError(f"the {name} split needs both classes; widen the window")


def _check_entity(spec: ModelSpec, store: FeatureStore, service: FeatureService) -> None:
    """The spec's entity must key one of the service's feature views."""
    from driftloop.features import split_service

    stored, _ = split_service(store, service)
    keyed = sorted({entity for view, _ in stored for entity in view.entities})
    if spec.entity not in keyed:
        raise ValueError(
            f"{spec.name}: entity {spec.entity!r} keys none of {service.name}'s feature views "
            f"(their entities: {', '.join(keyed) or 'none'})"
        )


def offline_features(
    store: FeatureStore, service: FeatureService, labelled: pd.DataFrame
) -> pd.DataFrame:
    """The service's point-in-time features of labelled transactions, as of just before
    each (what serving saw): one row per input row, in input order."""
    from driftloop.features import point_in_time

    return point_in_time(store, offline_entities(service, labelled), service)


def offline_entities(service: FeatureService, labelled: pd.DataFrame) -> pd.DataFrame:
    """The entity rows of the join for labelled transactions (see ``training_entities``)."""
    from driftloop.features import training_entities

    # History columns named like a feature (merchant_category) would collide in the join.
    offered = {f.name for p in service.feature_view_projections for f in p.features}
    return training_entities(labelled.drop(columns=sorted(offered & set(labelled.columns))))


def build_dataset(
    spec: ModelSpec,
    settings: Settings,
    window: TrainingWindow,
    change_point: datetime | None = None,
    parts_uri: str | None = None,
) -> Dataset:
    """The encoded, split training set of the window; with a ``change_point``, split
    within regimes (see :func:`split_within_regimes`).

    On a Ray-partitioned offline store (``local-ray``, ``k8s``) the set is built in Ray
    tasks, one per partition, and its train and validation rows are written as parquet
    parts under ``parts_uri`` (required there) instead of coming to this process: see
    ``_sharded``. The result is the same set (rows, encoding, data hash)."""
    from driftloop.features import RayAsOfOfflineStoreConfig, open_store

    labelled = read_labelled(spec, settings, window)
    if labelled.empty:
        raise ValueError(f"no labelled transactions in {window.start} .. {window.end}")
    store = open_store(settings)
    service = store.get_feature_service(spec.feature_service)
    _check_entity(spec, store, service)
    features = model_features(spec, service)
    if isinstance(store.config.offline_store, RayAsOfOfflineStoreConfig):
        from driftloop.training._sharded import build_sharded

        if parts_uri is None:
            raise ValueError(
                f"feature environment {settings.feature_env!r} builds the training set on "
                "Ray: say where its parts go (parts_uri)"
            )
        return build_sharded(
            spec, settings, store, service, features, labelled, change_point, parts_uri
        )
    joined = offline_features(store, service, labelled)
    served_mask: np.ndarray | None = None
    if spec.training_features == "served":
        # What the endpoint scored with (stream lag, stale rows) is what the model meets.
        directory = spec.served_uri(settings)
        served = read_served(directory, labelled["transaction_id"]) if directory else {}
        served_mask = overlay_served(joined, labelled["transaction_id"], served, features)
        joined[SERVED] = served_mask.astype(np.int8)
    joined[TS] = labelled[TS].to_numpy()  # split on the transaction's own time
    joined[LABEL] = labelled[spec.label].astype("int32").to_numpy()
    raw, strategy = split_within_regimes(joined, spec, change_point)
    vocab = train_categories(raw["train"], features)
    encoding = feature_spec(features, vocab)
    splits = {
        name: encode_split(part, encoding, np.arange(len(part), dtype=np.int64))
        for name, part in raw.items()
    }
    check_classes({name: int(part[LABEL].sum()) for name, part in splits.items()},
                  {name: len(part) for name, part in splits.items()})  # fmt: skip
    served_rows = None
    if served_mask is not None:
        served_rows = {name: int(part[SERVED].sum()) for name, part in raw.items()}
    names = [f.name for f in features]
    unencoded = {name: part[names].reset_index(drop=True) for name, part in raw.items()}
    return Dataset(
        features, vocab, splits, frame_hash(splits), unencoded, len(labelled),
        change_point if POST in splits["train"].columns else None, strategy, served_rows,
    )  # fmt: skip
