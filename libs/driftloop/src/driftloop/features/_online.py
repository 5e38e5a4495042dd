"""Online features for scoring, planned once per feature service and read as arrays.

:class:`OnlinePlan` resolves a feature service when a model loads: which stored views to
read (with the features its on-demand views take as input), how each view's entity keys
are typed, how each feature is decoded, and how each on-demand view is computed. A read
then costs one ``OnlineStore.online_read`` per stored view on the batch's distinct entity
keys (Feast's online store API, below ``get_online_features`` and its registry lookups,
response protos and dicts), one pass decoding values into arrays, and the compiled form
of each on-demand view (:mod:`driftloop.features._compiled`). No pandas, no registry.

Values are what Feast's ``get_online_features`` answers for the same rows (no TTL is
applied online, by Feast either); ``tests/unit/test_online_plan.py`` compares the two
on random rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from feast import FeatureService, FeatureStore, FeatureView
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import PrimitiveFeastType
from feast.value_type import ValueType

from driftloop.features._compiled import Transform, compiled_form
from driftloop.features._training import split_service

log = logging.getLogger(__name__)

NUMBER = "number"
INTEGER = "integer"
TEXT = "text"
_KINDS: dict[object, str] = {
    PrimitiveFeastType.INT32: INTEGER,
    PrimitiveFeastType.INT64: INTEGER,
    PrimitiveFeastType.FLOAT32: NUMBER,
    PrimitiveFeastType.FLOAT64: NUMBER,
    PrimitiveFeastType.BOOL: INTEGER,
    PrimitiveFeastType.STRING: TEXT,
}
_KEY_FIELDS = {ValueType.STRING: "string_val", ValueType.INT64: "int64_val"}


def kind_of(dtype: object) -> str:
    """How a Feast field's values are held: ``number``/``integer`` as float64 arrays
    (NaN for null), ``text`` as object arrays (None for null)."""
    kind = _KINDS.get(dtype)
    if kind is None:
        raise TypeError(f"no online plan for features of type {dtype}")
    return kind


@dataclass(frozen=True)
class _StoredView:
    view: FeatureView
    keys: tuple[str, ...]
    key_fields: tuple[str, ...]  # the ValueProto field of each key
    names: tuple[str, ...]
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class _OnDemandView:
    view: OnDemandFeatureView
    inputs: tuple[str, ...]
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    compiled: Transform | None


@dataclass(frozen=True)
class OnlineColumns:
    """The features of a batch: ``values`` per feature name, one entry per row (inputs of
    on-demand views included); ``event_time`` per stored view, the epoch seconds of the
    values each row got, NaN where the store had no value for the row's entity."""

    values: dict[str, np.ndarray]
    event_time: dict[str, np.ndarray]

    def found(self, view: str) -> np.ndarray:
        """Which rows the store had ``view``'s entity for."""
        found: np.ndarray = ~np.isnan(self.event_time[view])
        return found


class OnlinePlan:
    """A feature service's online read, resolved once (see the module's docstring)."""

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
        self.store = store
        self.service = service
        self._online = store._get_provider().online_store  # Feast's OnlineStore API
        stored, on_demand = split_service(store, service)
        self._stored = [_plan_view(store, view, names) for view, names in stored]
        self._on_demand = [_plan_on_demand(view, names) for view, names in on_demand]
        self.names = [
            f.name for projection in service.feature_view_projections for f in projection.features
        ]
        self.kinds: dict[str, str] = {}
        for names, kinds in [(p.names, p.kinds) for p in self._stored] + [
            (p.names, p.kinds) for p in self._on_demand
        ]:
            self.kinds.update(zip(names, kinds, strict=True))
        self.views = [part.view.name for part in self._stored]
        self.view_keys = {part.view.name: part.keys for part in self._stored}
        self.entity_keys = sorted({key for part in self._stored for key in part.keys})
        self.request_columns = sorted(
            {
                field.name
                for part in self._on_demand
                for source in part.view.source_request_sources.values()
                for field in source.schema
            }
        )
        for part in self._on_demand:
            if part.compiled is None:
                log.warning(
                    "on-demand view %s has no compiled form for its current source: "
                    "computed by Feast's transformation (pandas) on every read",
                    part.view.name,
                )

    @property
    def compiled(self) -> bool:
        """Every on-demand view runs without pandas."""
        return all(part.compiled is not None for part in self._on_demand)

    def read(
        self, keys: Mapping[str, Sequence[object]], request: Mapping[str, np.ndarray]
    ) -> OnlineColumns:
        """The features of ``n`` rows: ``keys`` holds each entity key's ``n`` values,
        ``request`` each request column (numbers float64, strings objects)."""
        n = len(next(iter(keys.values()))) if keys else len(next(iter(request.values())))
        values: dict[str, np.ndarray] = {}
        times: dict[str, np.ndarray] = {}
        config = self.store.config
        for part in self._stored:
            missing = [key for key in part.keys if key not in keys]
            if missing:
                raise KeyError(f"rows lack the entity keys of {part.view.name}: {missing}")
            rows = list(zip(*(keys[key] for key in part.keys), strict=True))
            slot: dict[tuple[object, ...], int] = {}
            where = [slot.setdefault(r, len(slot)) for r in rows]
            protos = [_entity_key(part, row) for row in slot]
            read = self._online.online_read(config, part.view, protos, list(part.names))
            m = len(slot)
            stamps = [math.nan] * m  # lists while filled: a row at a time is Python's work
            columns: list[list[object]] = [
                [None] * m if kind == TEXT else [math.nan] * m for kind in part.kinds
            ]
            for i, (stamp, data) in enumerate(read):
                if not data:
                    continue
                got = False
                for column, name in zip(columns, part.names, strict=True):
                    proto = data.get(name)
                    field = proto.WhichOneof("val") if proto is not None else None
                    if field is None or field == "null_val":
                        continue
                    column[i] = getattr(proto, field)
                    got = True
                if got and stamp is not None:
                    stamps[i] = stamp.timestamp()
            index = None if m == n else np.asarray(where, dtype=np.intp)  # keys repeat
            for name, kind, column in zip(part.names, part.kinds, columns, strict=True):
                array = np.array(column, dtype=object if kind == TEXT else np.float64)
                values[name] = array if index is None else array[index]
            stamped = np.array(stamps, dtype=np.float64)
            times[part.view.name] = stamped if index is None else stamped[index]
        for odfv in self._on_demand:
            inputs = {name: values.get(name, request.get(name)) for name in odfv.inputs}
            absent = [name for name, column in inputs.items() if column is None]
            if absent:
                raise KeyError(f"rows lack the request columns of {odfv.view.name}: {absent}")
            out = _transform(odfv, inputs)  # type: ignore[arg-type]
            for name, kind in zip(odfv.names, odfv.kinds, strict=True):
                values[name] = _as_kind(out[name], kind)
        return OnlineColumns(values=values, event_time=times)


def _plan_view(store: FeatureStore, view: FeatureView, names: list[str]) -> _StoredView:
    fields = {f.name: f for f in view.features}
    keys = tuple(column.name for column in view.entity_columns)
    key_fields = []
    for column in view.entity_columns:
        field = _KEY_FIELDS.get(column.dtype.to_value_type())
        if field is None:
            raise TypeError(f"no online plan for entity key {column.name} ({column.dtype})")
        key_fields.append(field)
    return _StoredView(
        view=view,
        keys=keys,
        key_fields=tuple(key_fields),
        names=tuple(names),
        kinds=tuple(kind_of(fields[name].dtype) for name in names),
    )


def _plan_on_demand(view: OnDemandFeatureView, names: list[str]) -> _OnDemandView:
    fields = {f.name: f for f in view.features}
    inputs = [
        f.name for projection in view.source_feature_view_projections.values()
        for f in projection.features
    ]  # fmt: skip
    inputs += [
        f.name for source in view.source_request_sources.values() for f in source.schema
    ]  # fmt: skip
    transformation = view.feature_transformation
    udf_string = getattr(transformation, "udf_string", "") or ""
    all_names = [f.name for f in view.features]  # computed together, served as asked
    return _OnDemandView(
        view=view,
        inputs=tuple(inputs),
        names=tuple(names) if names else tuple(all_names),
        kinds=tuple(kind_of(fields[name].dtype) for name in (names or all_names)),
        compiled=compiled_form(view.name, udf_string),
    )


def _entity_key(part: _StoredView, row: tuple[object, ...]) -> EntityKeyProto:
    values = [
        ValueProto(**{field: value})  # type: ignore[arg-type]
        for field, value in zip(part.key_fields, row, strict=True)
    ]
    return EntityKeyProto(join_keys=list(part.keys), entity_values=values)


def _as_kind(column: np.ndarray, kind: str) -> np.ndarray:
    if kind == TEXT:
        return np.asarray(column, dtype=object)
    return np.asarray(column, dtype=np.float64)


def _transform(part: _OnDemandView, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if part.compiled is not None:
        return part.compiled(inputs)
    import pandas as pd  # only for a view without a compiled form

    frame = pd.DataFrame({name: pd.Series(column) for name, column in inputs.items()})
    assert part.view.feature_transformation is not None, part.view.name
    out = part.view.feature_transformation.transform(frame)
    return {name: out[name].to_numpy() for name in part.names}
