"""Feast is imported through driftloop.features without typeguard's import-time rewrites
(about 4 s of CPU in every process that reads features), and typeguard itself is left as
it was for anyone else in the process."""

from __future__ import annotations

import pytest
import typeguard
import typeguard._decorators

import driftloop.features  # noqa: F401  (what every driftloop process imports Feast through)


def _instrumented(function: object) -> bool:
    names = function.__code__.co_names  # type: ignore[attr-defined]
    return "check_argument_types_internal" in names or "TypeCheckMemo" in names


def test_feast_classes_are_plain_and_typeguard_is_restored() -> None:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.on_demand_feature_view import OnDemandFeatureView

    for cls in (Entity, FeatureService, FeatureView, Field, FileSource, OnDemandFeatureView):
        assert not _instrumented(cls.__init__), cls
    assert typeguard.typechecked is typeguard._decorators.typechecked

    @typeguard.typechecked
    def double(x: int) -> int:
        return 2 * x

    assert _instrumented(double)  # typeguard still works for other code in the process
    with pytest.raises(typeguard.TypeCheckError):
        double("2")  # type: ignore[arg-type]
