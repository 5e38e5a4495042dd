"""v2 on the post-drift rows twice: with the features each payment was served with (the
heal table's footing) and with the offline point-in-time features of the same payments
(what training reads). A gap between the two, and the share of rows whose served features
differ from the offline ones, say whether a shortfall is the model's or the pipeline's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from driftloop.settings import Settings


def _labelled(directory: str, ids: pd.Series) -> pd.DataFrame:
    """The stream-labelled transactions (entity columns, request-time inputs) of ``ids``."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = ids.astype(str).unique().tolist()
    table = ds.dataset(directory, format="parquet").to_table(
        filter=pc.field("transaction_id").isin(wanted)
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame.drop_duplicates("transaction_id", keep="first")


def _differs(served: pd.Series, offline: pd.Series) -> np.ndarray:
    if served.dtype == object or offline.dtype == object:
        a, b = served.astype("string"), offline.astype("string")
        same: np.ndarray = ((a == b).fillna(False) | (a.isna() & b.isna())).to_numpy(dtype=bool)
        return ~same
    x = pd.to_numeric(served, errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(offline, errors="coerce").to_numpy(dtype=float)
    close: np.ndarray = np.isclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True)
    return ~close


def offline_footing(
    settings: Settings, scores: pd.DataFrame, model: str, version: str, since: datetime
) -> dict[str, Any]:
    """``version`` scored on the labelled rows logged at or after ``since``, on served and
    on offline point-in-time features; the share of rows (all, fraud) with at least one
    feature served differently from its offline value, and that share per feature."""
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    from driftloop.features import open_store
    from driftloop.models import LoadedModel, ModelStore
    from driftloop.training import load_model_spec
    from driftloop.training._dataset import offline_features

    spec = load_model_spec(settings.deploy_dir / "apps" / model / "model.yaml")
    directory = spec.labelled_uri(settings)
    if directory is None:
        raise ValueError(f"{model}: no stream-labelled history under {settings.state_dir}")
    rows = scores[(scores["scored_at"] >= pd.Timestamp(since)) & scores["is_fraud"].notna()]
    rows = rows.drop_duplicates("transaction_id", keep="first")
    labelled = _labelled(directory, rows["transaction_id"])
    rows = rows.merge(labelled[["transaction_id"]], on="transaction_id", how="inner")
    labelled = rows[["transaction_id"]].merge(labelled, on="transaction_id", how="left")
    loaded = LoadedModel.load(ModelStore.from_settings(settings).get(model, version))
    names = loaded.features.names
    store = open_store(settings)
    service = store.get_feature_service(loaded.metadata.feature_service)
    offline = offline_features(store, service, labelled)[names].reset_index(drop=True)
    served = rows[[f"f.{n}" for n in names]].reset_index(drop=True)
    served.columns = pd.Index(names)
    y = rows["is_fraud"].astype(bool).to_numpy()
    threshold = loaded.threshold if loaded.threshold is not None else 0.5
    out: dict[str, Any] = {"footing_rows": len(rows), "footing_positives": int(y.sum())}
    both = 0 < y.sum() < len(y)
    for footing, frame in (("served", served), ("offline", offline)):
        got = loaded.predict(frame)
        out[f"v2_{footing}_pr_auc"] = float(average_precision_score(y, got)) if both else None
        out[f"v2_{footing}_recall"] = float(((got >= threshold) & y).sum() / max(1, y.sum()))
    differs = np.zeros(len(rows), dtype=bool)
    by_feature: dict[str, float] = {}
    for name in names:
        feature = _differs(served[name], offline[name])
        differs |= feature
        if len(rows) and feature.mean() >= 0.01:
            by_feature[name] = round(float(feature.mean()), 3)
    out["skew_by_feature"] = by_feature  # features served differently on >= 1 % of rows
    out["skewed_rows_share"] = float(differs.mean()) if len(rows) else None
    out["skewed_fraud_share"] = float(differs[y].mean()) if y.any() else None
    return out
