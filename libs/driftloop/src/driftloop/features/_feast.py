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
"""

from __future__ import annotations

import sys
from typing import Any


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``typechecked`` as a no-op, in both of its forms (bare and with options)."""
    return _unchecked if target is None else target


def _import_feast() -> None:
    if "feast" in sys.modules:
        return
    import typeguard

    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        import feast
        import feast.infra.offline_stores.dask  # noqa: F401  (the as-of store's base)
    finally:
        typeguard.typechecked = checked


_import_feast()
