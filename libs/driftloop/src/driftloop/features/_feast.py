"""Feast, imported without typeguard's import-time instrumentation.

Feast decorates its definition classes (``FeatureView``, ``Entity``, ``Field``, the data
sources, ...) with typeguard's ``@typechecked``, which re-reads each class's source,
rewrites its syntax tree and compiles it again at import: 19 such rewrites make ``import
feast`` cost about 4 s more CPU on this project's 2-core machine (6.0 s against 2.0 s
measured side by side), paid by every process that reads features: each service, Serve
replica, retraining step and CLI call (typeguard issue #468). The
checks themselves only catch wrong argument types given to Feast's constructors, which
the feature repository's tests exercise (``feast apply`` in its own process keeps them).

Importing this module imports Feast once with ``typeguard.typechecked`` swapped for a
pass-through, and puts typeguard back at once: Feast's classes are then plain, while any
other user of typeguard in the process keeps real checks. It is the first import of
:mod:`driftloop.features`; a module that imports Feast outside that package imports it
after (or only for type checking). If Feast was already imported, nothing changes.

Feast's metrics module, imported by its online reads and materialization, sets
``PROMETHEUS_MULTIPROC_DIR`` (and its older spelling) to a temporary directory of its own
when they are unset, for Gunicorn workers of its feature server. ``prometheus_client``
chooses its value store once, when it is first imported: imported after that, every
counter in the process keeps its value in a memory-mapped file keyed by name and labels,
so two registries of one process share counts, and every process started from it inherits
the variables. This project does not enable Feast's metrics; the import below brings
``prometheus_client`` in first, then Feast's metrics module, and takes both variables
and the directory away again.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

_MULTIPROCESS = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``typechecked`` as a no-op, in both of its forms (bare and with options)."""
    return _unchecked if target is None else target


def _import_feast() -> None:
    if "feast" in sys.modules:
        return
    import prometheus_client  # noqa: F401  (its value store chosen before Feast's metrics)
    import typeguard

    before = {name: os.environ.get(name) for name in _MULTIPROCESS}
    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        import feast
        import feast.infra.offline_stores.dask  # the as-of store's base
        import feast.metrics
    finally:
        typeguard.typechecked = checked
        _restore(before)
    if feast.metrics._owns_mp_dir and feast.metrics._prometheus_mp_dir:
        shutil.rmtree(feast.metrics._prometheus_mp_dir, ignore_errors=True)
        feast.metrics._owns_mp_dir = False  # its exit hook then leaves the path alone


def _restore(environment: dict[str, str | None]) -> None:
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_import_feast()
