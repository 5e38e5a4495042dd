"""Online features for scoring: the same values training saw, read from the online store.

Each stored feature view is read with one Feast call for all rows; on-demand views are
then computed here from those values and the request columns, by the very transformation
:func:`point_in_time` applies to training rows — so serving and training cannot disagree
on how a request-time feature is made. (Feast's own on-demand path in
``get_online_features`` costs about 5 ms per call in pandas mode; a plain view read costs
about 0.2 ms.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore

from driftloop.features._training import split_service

TIMESTAMP_SUFFIX = "__ts"
"""Feast's suffix for a feature's event timestamp (seconds since the epoch)."""


@dataclass(frozen=True)
class OnlineFeatures:
    """Feature values for each request row, plus where they came from.

    ``values``: one row per request row, the service's features in its order.
    ``event_time``: per stored view, the event time (epoch seconds) of the values each
    row got, NaN where the store had nothing for the row's entity (its features are null).
    """

    values: pd.DataFrame
    event_time: pd.DataFrame

    def found(self, view: str) -> np.ndarray:
        """Which rows the store had ``view``'s entity for."""
        found: np.ndarray = self.event_time[view].notna().to_numpy()
        return found


class OnlineFeatureReader:
    """Reads a feature service's features for batches of request rows.

    Resolving the service in Feast's registry costs about 6 ms, so it is done once here;
    each :meth:`read` then costs one online-store call per stored view plus the on-demand
    transformations (about 3 ms for ``fraud_v1`` on two rows)."""

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
        self.store = store
        self.service = service
        self._stored, self._on_demand = split_service(store, service)
        self.names = [
            f.name for projection in service.feature_view_projections for f in projection.features
        ]
        self.views = [view.name for view, _ in self._stored]
        self.entity_keys = sorted(
            {column.name for view, _ in self._stored for column in view.entity_columns}
        )

    def read(self, rows: pd.DataFrame) -> OnlineFeatures:
        """The features for ``rows`` (entity keys and request columns), in row order."""
        base = rows.reset_index(drop=True)
        columns: dict[str, object] = {}
        times: dict[str, np.ndarray] = {}
        for view, names in self._stored:
            keys = [column.name for column in view.entity_columns]
            absent = [key for key in keys if key not in base.columns]
            if absent:
                raise KeyError(f"rows lack the entity keys of {view.name}: {', '.join(absent)}")
            refs = [f"{view.name}:{name}" for name in names]
            got = self.store.get_online_features(
                features=refs, entity_rows={key: base[key].tolist() for key in keys}
            ).to_dict(include_event_timestamps=True)
            for name in names:
                columns[name] = pd.Series(got[name], dtype="object")
            stamps = [got[f"{name}{TIMESTAMP_SUFFIX}"] for name in names]
            times[view.name] = _event_seconds(stamps, [got[n] for n in names], len(base))
        # One concat rather than a column insert per feature (each insert copies the frame).
        out = pd.concat([base, pd.DataFrame(columns, index=base.index)], axis=1)
        for odfv, names in self._on_demand:
            assert odfv.feature_transformation is not None, odfv.name
            transformed = odfv.feature_transformation.transform(out)
            for name in names:
                out[name] = transformed[name].to_numpy()
        return OnlineFeatures(values=out[self.names], event_time=pd.DataFrame(times))


def _event_seconds(stamps: list[list[object]], values: list[list[object]], n: int) -> np.ndarray:
    """Per row, the newest timestamp of any feature that had a value; NaN if none had."""
    out = np.full(n, np.nan)
    for column_stamps, column_values in zip(stamps, values, strict=True):
        for i, (stamp, value) in enumerate(zip(column_stamps, column_values, strict=True)):
            if value is None or not isinstance(stamp, int | float) or stamp <= 0:
                continue
            out[i] = stamp if np.isnan(out[i]) else max(out[i], float(stamp))
    return out
