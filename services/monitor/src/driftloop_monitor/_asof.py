"""The offline point-in-time features of a few rows, read straight from the batch sources.

Feast's file offline store costs about 12 s per query on the demo's sources (130 stream
files, 95 k rows) whatever the number of entity rows, because it joins every source row
before it filters; the skew check asks for 150 rows a window. Here each stored view's
source is read with a filter on the sampled entities only (0.1-0.2 s) and joined as
Feast joins it: per row, the newest source row of its entity at or before its time and
no older than the view's ttl, the newest ``created`` winning a tie. On-demand features are
then computed by the view's own transformation, as ``point_in_time`` does. The
integration test checks the result against ``point_in_time`` row for row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore

TS = "event_timestamp"
_ROW = "__skew_row"


def _source_rows(path: str, keys: list[str], wanted: pd.DataFrame, columns: list[str],
                 timestamp: str, created: str | None) -> pd.DataFrame:  # fmt: skip
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", exclude_invalid_files=True)
    condition = None
    for key in keys:
        term = ds.field(key).isin(sorted(set(wanted[key].astype(str))))
        condition = term if condition is None else condition & term
    names = [*keys, timestamp, *([created] if created else []), *columns]
    frame: pd.DataFrame = dataset.to_table(columns=names, filter=condition).to_pandas()
    return frame


def as_of(store: FeatureStore, entities: pd.DataFrame, service: FeatureService) -> pd.DataFrame:
    """``point_in_time(store, entities, service)`` for the file offline store, cheaply: one
    row per entity row, in order, with the service's features."""
    import pandas as pd

    from driftloop.features import split_service

    out = entities.reset_index(drop=True).copy()
    out[TS] = pd.to_datetime(out[TS], utc=True)
    out[_ROW] = np.arange(len(out))
    stored, on_demand = split_service(store, service)
    for view, names in stored:
        source = view.batch_source
        path = getattr(source, "path", None)
        if source is None or not isinstance(path, str):
            raise TypeError(f"{view.name}: the as-of join reads file sources only; use join: feast")
        keys = [column.name for column in view.entity_columns]
        ts_field, created = source.timestamp_field, source.created_timestamp_column or None
        rows = _source_rows(path, keys, out, names, ts_field, created)
        rows = rows.rename(columns={ts_field: "__ts"})
        rows["__ts"] = pd.to_datetime(rows["__ts"], utc=True)
        order = ["__ts", created] if created else ["__ts"]
        rows = rows.sort_values(order, kind="stable").drop_duplicates([*keys, "__ts"], keep="last")
        left = out[[_ROW, *keys, TS]].sort_values(TS, kind="stable")
        for key in keys:  # merge_asof needs equal key types on both sides
            rows[key], left[key] = rows[key].astype(str), left[key].astype(str)
        joined = pd.merge_asof(
            left, rows.drop(columns=[created] if created else []), left_on=TS, right_on="__ts",
            by=keys, direction="backward",
            tolerance=pd.Timedelta(view.ttl) if view.ttl and view.ttl.total_seconds() else None,
        )  # fmt: skip
        out = out.merge(joined[[_ROW, *names]], on=_ROW, how="left")
    out = out.sort_values(_ROW).reset_index(drop=True)
    for odfv, names in on_demand:
        assert odfv.feature_transformation is not None, odfv.name
        transformed = odfv.feature_transformation.transform(out)
        for name in names:
            out[name] = transformed[name].to_numpy()
    return out.drop(columns=_ROW)
