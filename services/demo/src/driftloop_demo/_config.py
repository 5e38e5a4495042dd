"""What the demo runs: how much history, how much traffic, which drift, how long to wait."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DemoConfig(BaseModel):
    """The loop's knobs. The defaults close the loop within ten minutes on two cores.

    ``scenario`` must hurt the serving model's real performance for the loop to prove
    anything: the default, ``crypto-cash-out``, moves all fraud to a merchant category and
    channel the first model never saw, at home and at ordinary amounts — v1 misses it, a
    model retrained on the new traffic can learn it. (``concept-drift`` hurts v1 as much,
    but its ``mimicry`` fraud copies the cardholder's habits so closely that retraining on
    minutes of it does not help: a loop that closes without a better model.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "fraud"
    scenario: str = Field("crypto-cash-out", description="a scenario of the simulator")
    strength: float = Field(1.0, ge=0)
    seed: int = 7
    customers: int = Field(1000, ge=10)
    merchants: int = Field(150, ge=5)
    fraud_rate: float = Field(0.05, gt=0, le=0.5, description="fraud rows per legitimate row")
    history_days: float = Field(
        10.0, gt=0, description="simulated history: longer than the 7-day feature windows"
    )
    train_days: float = Field(3.0, gt=0, description="the most recent days v1 trains on")
    retrain_days: float = Field(
        3.0,
        gt=0,
        description="the window a retraining run trains on (trigger.yaml), as long as v1's: "
        "the dataset step splits each regime by time on its own, so the new regime is in "
        "every split however long the window, and the old regime's days teach the fraud "
        "that did not move. bench/retrain_window.py (2 seeds per scenario, 7 h of labels "
        "after the change): v2's PR-AUC share of v1's pre-drift 0.78 / 0.73 / 0.78 with "
        "half a day on gift-card-fraud / online-takeover / crypto-cash-out, 0.88 / 0.85 / "
        "0.82 with three days; recall share 0.58 / 0.56 / 0.72 against 1.01 / 0.91 / 1.03",
    )
    evidence_rows: int = Field(
        2400,
        ge=0,
        description="labelled predictions after the change point before a run starts "
        "(trigger.yaml evidence): about a minute of traffic",
    )
    evidence_positives: int = Field(
        200,
        ge=0,
        description="fraud labels among them: the newest 15 % are the post-change holdout "
        "the gate judges on, which needs 15 positives — fewer than 15 % of them in "
        "practice, as the newest fraud labels are the last to arrive (158 gave 12)",
    )
    evidence_max_wait_m: int = Field(
        4, ge=1, description="minutes (wall) after which a held run starts anyway"
    )
    history_tx_per_day: float = Field(8000, gt=0)
    seasonal: bool = Field(
        False,
        description="a world with weekly and daily cycles (the simulator's default) instead "
        "of one whose every hour is alike. Off for the demo: its stream has no daily cycle "
        "(monitor windows are about three event-time hours), and a history that has one "
        "makes the stream look drifted from its first window — v1 learnt that night-time "
        "payments are rarer and fraudier; and with weekly volume a model retrained on a "
        "Saturday sees Sunday's 23 % fewer payments per customer as drift of every 24 h "
        "aggregate",
    )
    rate: float = Field(40.0, gt=0, description="transactions per second through the endpoint")
    predict_batch: int = Field(
        1,
        ge=1,
        le=256,
        description="payments per scoring call: 1 calls /predict for each payment, as a card "
        "network does; more gathers them (at most 0.1 s) for /predict/batch, a fraction of "
        "the serving CPU per payment",
    )
    onset_s: float = Field(60.0, ge=0, description="seconds of traffic before the drift starts")
    label_delay_s: float = Field(10.0, ge=0, description="seconds until a label follows")
    after_v2_s: float = Field(
        45.0, ge=0, description="traffic after v2 serves, on which v1 and v2 are compared"
    )
    timeout_s: float = Field(900.0, gt=0, description="give up when the loop has not closed")
    alerts_resolve_s: float = Field(
        120.0,
        ge=0,
        description="how much longer than after_v2_s the traffic goes on while a drift or "
        "performance alert of the stack's Prometheus still fires: its resolution needs a "
        "window of v2's that the monitor judges fine, then a scrape and an evaluation",
    )
    # The monitor's window and evaluation sizes for this traffic (the rest of monitor.yaml
    # is the shipped policy): a demo stream is minutes long, not days.
    window_rows: int = Field(1000, ge=50)
    window_min_rows: int = Field(300, ge=1)
    performance_labels: int = Field(1000, ge=10)
    performance_min_positives: int = Field(15, ge=1)
    progress_every_s: float = Field(5.0, gt=0)
    customer_gap_s: float = Field(
        1.0,
        ge=0,
        description="wall seconds at least between one customer's payments (the "
        "simulator's pacer): at this time warp a fraud episode's payments a minute apart in "
        "event time are a sixth of a second apart, faster than the stream folds one into "
        "the features the next is scored with. 0 lets them go as drawn (measured on a loop "
        "run: 64-71 % of fraud rows scored without their episode's previous payment)",
    )
    stream_linger_s: float = Field(
        0.2,
        ge=0,
        description="how long the stream service's micro-batch gathers (its default: 1 s). "
        "Event time runs hundreds of times faster than the wall clock here, so each second "
        "a payment waits before its customer's features are pushed online is minutes of "
        "event time that serving trails training by (the skew check measures it)",
    )
    skew_check: bool = Field(
        True,
        description="the monitor compares a sample of each window's served features with "
        "the offline point-in-time features of the same payments (monitor.yaml skew)",
    )

    @property
    def time_warp(self) -> float:
        """Virtual seconds per wall second that give the stream the history's pace per
        customer: features, monitor windows and training windows then see days of
        realistic traffic pass in minutes."""
        legit_per_s = self.rate / (1.0 + self.fraud_rate)
        return max(1.0, legit_per_s * 86400 / self.history_tx_per_day)

    shadow: bool = Field(
        False,
        description="the retraining run declares its challenger as the shadow (a commit "
        "to retrain.yaml: promote_as: shadow) instead of promoting it; the loop closes when "
        "the monitor's live verdict on it has been committed: its promotion or its removal",
    )
    shadow_window: int = Field(
        500,
        ge=50,
        description="labelled payments per point of the report's champion-against-shadow "
        "plot (monitor.yaml's shadow step: the pairs between two judgements)",
    )
    replicas: int = Field(
        1, ge=1, le=4, description="Serve replicas of the model (two survive a replica's death)"
    )
    faults: tuple[str, ...] = Field(
        (), description="parts to SIGKILL once during the loop and bring back (see _faults)"
    )

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from driftloop_demo._faults import FAULTS

        unknown = sorted(set(names) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
        return tuple(n for n in FAULTS if n in names)

    default_ports: bool = Field(
        True, description="services on their usual metrics ports (Prometheus scrapes them)"
    )
