"""Drift monitoring shared by the monitor service and ``driftloop drift report``: the
policy file, per-column comparisons of whylogs profiles, the audit records kept per window,
and the report drawn from them.

Needs the ``monitoring`` extra (whylogs' drift algorithms, scikit-learn, matplotlib);
importing this package imports none of them.
"""

from driftloop.drift._audit import AuditStore, ColumnRecord, WindowRecord, column_summary
from driftloop.drift._compare import (
    ColumnTest,
    MetricTest,
    adjust,
    auc_variance,
    chi_square,
    compare,
    compare_metrics,
)
from driftloop.drift._policy import (
    Algorithm,
    CanarySpec,
    ColumnRule,
    DriftSpec,
    MonitorPolicy,
    PerformanceSpec,
    RollbackSpec,
    ShadowSpec,
    SkewSpec,
    WindowSpec,
    load_policy,
)
from driftloop.drift._report import write_report
from driftloop.drift._skew import SkewColumn, SkewRecord, compare_column, compare_skew

__all__ = [
    "Algorithm",
    "AuditStore",
    "CanarySpec",
    "ColumnRecord",
    "ColumnRule",
    "ColumnTest",
    "DriftSpec",
    "MetricTest",
    "MonitorPolicy",
    "PerformanceSpec",
    "RollbackSpec",
    "ShadowSpec",
    "SkewColumn",
    "SkewRecord",
    "SkewSpec",
    "WindowRecord",
    "WindowSpec",
    "adjust",
    "auc_variance",
    "chi_square",
    "column_summary",
    "compare",
    "compare_column",
    "compare_metrics",
    "compare_skew",
    "load_policy",
    "write_report",
]
