"""The monitor's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class MonitorMetrics:
    registry: CollectorRegistry
    statistic: Gauge
    p_value: Gauge
    effect: Gauge
    windows: Counter
    events: Counter
    drifting: Gauge
    predictions: Counter
    labels: Counter
    skipped: Counter
    bad_values: Counter
    performance: Gauge
    lag: Gauge
    rows_per_second: Gauge
    open_rows: Gauge
    awaiting_labels: Gauge
    skew_share: Gauge
    skew_mean_diff: Gauge
    shadow_pairs: Counter
    shadow_unpaired: Counter
    shadow_pending: Gauge
    shadow_rows: Gauge
    shadow_verdict: Gauge
    shadow_metric: Gauge
    canary_labelled: Counter
    canary_unlabelled: Counter
    canary_pending: Gauge
    canary_rows: Gauge
    canary_verdict: Gauge
    canary_metric: Gauge
    rollback_armed: Gauge
    rollback_evaluations: Counter
    rollback_p_worse: Gauge

    @classmethod
    def create(cls) -> MonitorMetrics:
        r = CollectorRegistry()
        column = ["model", "version", "column", "algorithm"]
        return cls(
            registry=r,
            statistic=Gauge("driftloop_monitor_column_statistic",
                            "Drift statistic of the last closed window", column, registry=r),
            p_value=Gauge("driftloop_monitor_column_p_value",
                          "p-value of the last closed window (uncorrected)", column, registry=r),
            effect=Gauge("driftloop_monitor_column_effect",
                         "Effect size of the last closed window", column, registry=r),
            windows=Counter("driftloop_monitor_windows_closed", "Windows closed",
                            ["model", "kind", "verdict"], registry=r),
            events=Counter("driftloop_monitor_events", "Drift events published",
                           ["model", "kind"], registry=r),
            drifting=Gauge("driftloop_monitor_drifting",
                           "1 from a drift event until a window of its kind is judged fine "
                           "again (kind: data, performance)", ["model", "kind"], registry=r),
            predictions=Counter("driftloop_monitor_predictions", "Predictions windowed",
                                registry=r),
            labels=Counter("driftloop_monitor_labels", "Labels read", ["outcome"], registry=r),
            skipped=Counter("driftloop_monitor_skipped_predictions",
                            "Predictions not windowed", ["reason"], registry=r),
            bad_values=Counter("driftloop_monitor_bad_values",
                               "Feature values missing or unusable", ["column", "kind"],
                               registry=r),
            performance=Gauge("driftloop_monitor_performance",
                              "Metric of the last performance evaluation",
                              ["model", "version", "metric"], registry=r),
            lag=Gauge("driftloop_monitor_consumer_lag", "Records behind the topic's end",
                      ["topic"], registry=r),
            rows_per_second=Gauge("driftloop_monitor_rows_per_second",
                                  "Predictions per second over the last interval", registry=r),
            open_rows=Gauge("driftloop_monitor_open_rows", "Predictions in open windows",
                            registry=r),
            awaiting_labels=Gauge("driftloop_monitor_awaiting_labels",
                                  "Predictions waiting for their label", registry=r),
            skew_share=Gauge("driftloop_monitor_skew_share",
                             "Share of sampled rows whose served feature differs from the "
                             "offline point-in-time value (last checked window)",
                             ["model", "version", "column"], registry=r),
            skew_mean_diff=Gauge("driftloop_monitor_skew_mean_diff",
                                 "Mean served minus mean offline value of a feature "
                                 "(last checked window)", ["model", "version", "column"],
                                 registry=r),
            shadow_pairs=Counter("driftloop_monitor_shadow_pairs",
                                 "Shadow scores paired with the serving version's score and the "
                                 "label of the same payment", registry=r),
            shadow_unpaired=Counter("driftloop_monitor_shadow_unpaired",
                                    "Shadow scores let go without a pair (expired: no label "
                                    "within the horizon; evicted: over max_awaiting)",
                                    ["reason"], registry=r),
            shadow_pending=Gauge("driftloop_monitor_shadow_pending",
                                 "Shadow scores waiting for their serving score or label",
                                 registry=r),
            shadow_rows=Gauge("driftloop_monitor_shadow_paired_rows",
                              "Paired labelled rows of a shadow at its last judgement "
                              "(kind: rows, positives)", ["model", "serving", "shadow", "kind"],
                              registry=r),
            shadow_verdict=Gauge("driftloop_monitor_shadow_verdict",
                                 "1 for the shadow's verdict at its last judgement (better, "
                                 "worse, unknown), 0 for the others",
                                 ["model", "serving", "shadow", "verdict"], registry=r),
            shadow_metric=Gauge("driftloop_monitor_shadow_metric",
                                "A metric of either version on the shadow's paired rows "
                                "(role: serving, shadow)",
                                ["model", "serving", "shadow", "role", "metric"], registry=r),
            canary_labelled=Counter("driftloop_monitor_canary_labelled",
                                    "Labelled rows gathered to judge a canary (role: canary, "
                                    "its answers; serving, the serving version's beside it)",
                                    ["role"], registry=r),
            canary_unlabelled=Counter("driftloop_monitor_canary_unlabelled",
                                      "Canary answers let go without a label (expired: none "
                                      "within the horizon; evicted: over max_awaiting)",
                                      ["reason"], registry=r),
            canary_pending=Gauge("driftloop_monitor_canary_pending",
                                 "Canary answers waiting for their label", registry=r),
            canary_rows=Gauge("driftloop_monitor_canary_labelled_rows",
                              "Labelled rows of each side of a canary's judgement at its last "
                              "judgement (role: serving, canary; kind: rows, positives)",
                              ["model", "serving", "canary", "role", "kind"], registry=r),
            canary_verdict=Gauge("driftloop_monitor_canary_verdict",
                                 "1 for the canary's verdict at its last judgement (better, "
                                 "worse, unknown), 0 for the others",
                                 ["model", "serving", "canary", "verdict"], registry=r),
            canary_metric=Gauge("driftloop_monitor_canary_metric",
                                "A metric of either version at the canary's last judgement "
                                "(role: serving, canary)",
                                ["model", "serving", "canary", "role", "metric"], registry=r),
            rollback_armed=Gauge("driftloop_monitor_rollback_armed",
                                 "1 while a promoted version is judged against the version it "
                                 "replaced, 0 once its watch ended",
                                 ["model", "version", "previous"], registry=r),
            rollback_evaluations=Counter("driftloop_monitor_rollback_evaluations",
                                         "Evaluations of a promoted version against the "
                                         "previous one (verdict: regressed, not_worse, too_few)",
                                         ["model", "verdict"], registry=r),
            rollback_p_worse=Gauge("driftloop_monitor_rollback_p_worse",
                                   "Corrected one-sided p-value that a promoted version is "
                                   "below the previous one's last live figures",
                                   ["model", "version", "metric"], registry=r),
        )  # fmt: skip
