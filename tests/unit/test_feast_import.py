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


def test_feast_leaves_prometheus_metrics_in_process_and_the_environment_as_it_was() -> None:
    """Feast's metrics module sets PROMETHEUS_MULTIPROC_DIR to a directory of its own; had
    prometheus_client been imported after it, two registries of one process would share
    every count of the same name (seen: a test's fresh serving registry started at the 10
    422s of another one), and every process started from here would inherit the mode."""
    import os
    from pathlib import Path

    import feast.metrics
    from prometheus_client import CollectorRegistry, Counter

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert "PROMETHEUS_MULTIPROCESS_DIR" not in os.environ
    made = feast.metrics._prometheus_mp_dir
    assert made is None or not Path(made).exists()
    first, second = CollectorRegistry(), CollectorRegistry()
    Counter("feast_import_probe", "probe", registry=first).inc(10)
    Counter("feast_import_probe", "probe", registry=second).inc()
    assert second.get_sample_value("feast_import_probe_total") == 1
    assert first.get_sample_value("feast_import_probe_total") == 10
