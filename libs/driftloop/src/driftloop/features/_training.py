"""Point-in-time training sets that keep every labelled row, whatever the offline store."""

from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView
from feast.on_demand_feature_view import OnDemandFeatureView

from driftloop.features._asof import AsOfOfflineStoreConfig

_ROW = "__driftloop_row"
_KEY = "__driftloop_key"
TS = "event_timestamp"


def split_service(
    store: FeatureStore, service: FeatureService
) -> tuple[list[tuple[FeatureView, list[str]]], list[tuple[OnDemandFeatureView, list[str]]]]:
    """The stored views to read and the on-demand views to compute for ``service``.

    Each stored view comes with the features to read from it: the service's own, then
    any its on-demand views take as input (a service may serve ``amount_to_mean_7d``
    without serving the ``amount_mean_7d`` it is computed from). Each on-demand view
    comes with the features the service takes from it."""
    reads: dict[str, list[str]] = {}
    on_demand: list[tuple[OnDemandFeatureView, list[str]]] = []
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        try:
            odfv = store.get_on_demand_feature_view(projection.name)
        except Exception:  # Feast raises its own not-found types
            odfv = None
        if odfv is not None:
            on_demand.append((odfv, names))
        else:
            reads.setdefault(projection.name, []).extend(names)
    for odfv, _ in on_demand:
        for source, projection in odfv.source_feature_view_projections.items():
            wanted = reads.setdefault(source, [])
            wanted.extend(f.name for f in projection.features if f.name not in wanted)
    stored = [(store.get_feature_view(name), names) for name, names in reads.items()]
    return stored, on_demand


def point_in_time(
    store: FeatureStore, entity_df: pd.DataFrame, service: FeatureService
) -> pd.DataFrame:
    """The service's features for every entity row, as of its ``event_timestamp``.

    One output row per input row, in input order; a row without history gets nulls,
    never disappears (a new customer is where fraud hides). On the as-of store (the
    local default) that is what Feast returns: one query for every stored view, put back
    in input order by a row number of our own. Feast's other stores differ at the edges —
    the file (dask) store drops entity rows that share keys and timestamp with another,
    and rows whose only history is older than the TTL — so there each feature view is
    joined by Feast on the *unique* (keys, timestamp) pairs and merged back here.
    On-demand views are then computed from the joined values and the request columns the
    rows carry, exactly as serving computes them.
    """
    requested = {
        f.name for projection in service.feature_view_projections for f in projection.features
    }
    clash = sorted(requested & set(entity_df.columns))
    if clash:
        raise ValueError(
            f"entity rows already have columns named like features of {service.name}: "
            f"{', '.join(clash)}; drop or rename them first"
        )
    out = entity_df.reset_index(drop=True).copy()
    out[TS] = pd.to_datetime(out[TS], utc=True)
    out[_ROW] = np.arange(len(out), dtype=np.int64)
    stored, on_demand = split_service(store, service)
    if isinstance(store.config.offline_store, AsOfOfflineStoreConfig):
        refs = [f"{view.name}:{name}" for view, names in stored for name in names]
        got = store.get_historical_features(entity_df=out, features=refs).to_df()
        if len(got) != len(out):
            raise RuntimeError(f"the offline store returned {len(got)} rows for {len(out)}")
        got = got.sort_values(_ROW, kind="stable").reset_index(drop=True)
        for _, names in stored:
            for name in names:
                out[name] = got[name].to_numpy()
    else:
        for view, names in stored:
            keys = [column.name for column in view.entity_columns]
            unique = out[[*keys, TS]].drop_duplicates().reset_index(drop=True)
            # Stores may round or re-zone timestamps: match results by a key of our own.
            unique[_KEY] = np.arange(len(unique), dtype=np.int64)
            refs = [f"{view.name}:{name}" for name in names]
            answer = store.get_historical_features(entity_df=unique, features=refs).to_df()
            got = unique.merge(answer[[_KEY, *names]].drop_duplicates(_KEY), on=_KEY, how="left")
            out = out.merge(
                got.drop(columns=_KEY), on=[*keys, TS], how="left", validate="many_to_one"
            )
    for odfv, names in on_demand:
        assert odfv.feature_transformation is not None, odfv.name
        transformed = odfv.feature_transformation.transform(out)
        for name in names:
            out[name] = transformed[name].to_numpy()
    return out.sort_values(_ROW).drop(columns=_ROW).reset_index(drop=True)
