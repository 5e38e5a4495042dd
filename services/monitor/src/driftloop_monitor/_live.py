"""What the live verdicts judge: (serving, challenger) pairs and their labelled rows.

A challenger is a version that scores live traffic beside the serving one: a shadow
(``_shadow``: scored on the same payments, answering nothing) or a canary (``_canary``:
answering its customers' payments). Each join keeps, per (serving version, challenger
version) pair, when the challenger was first seen, how many labelled rows came since the
last judgement, and whether the pair is closed (a verdict said) or its deadline said.
``_verdicts`` reads the pairs and both sides' labelled rows and judges them. Everything
changes inside the batch's checkpoint transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from driftloop.drift import CanarySpec, ShadowSpec
from driftloop_monitor._checkpoint import Checkpoint, Joined

Role = Literal["shadow", "canary"]


@dataclass(frozen=True)
class Pair:
    """A challenger version judged against a serving version, as kept in the checkpoint."""

    serving: str
    challenger: str
    first_seen: float
    since_eval: int
    closed: str | None
    deadline_said: bool


class LiveJoin(ABC):
    """The pairs of one kind of challenger; subclasses join its labelled rows."""

    role: ClassVar[Role]
    _pairs: ClassVar[str]
    """the checkpoint table of the pairs"""

    def __init__(self, checkpoint: Checkpoint, spec: ShadowSpec | CanarySpec) -> None:
        self._db = checkpoint.db
        self.spec = spec

    @abstractmethod
    def sides(self, pair: Pair) -> tuple[list[Joined], list[Joined]]:
        """The labelled rows of the serving version and of the challenger, by event time."""

    def pairs(self) -> list[Pair]:
        rows = self._db.execute(
            f"SELECT serving_version, version, first_seen, since_eval, closed, deadline_said"  # noqa: S608
            f" FROM {self._pairs} ORDER BY first_seen"
        )
        return [Pair(str(a), str(b), float(t), int(n), c, bool(d)) for a, b, t, n, c, d in rows]

    def update_pair(
        self, pair: Pair, *, closed: str | None = None, deadline_said: bool = False
    ) -> None:
        """After a judgement: the count restarts; ``closed`` ends the judging of the pair."""
        self._db.execute(
            f"UPDATE {self._pairs} SET since_eval = 0, closed = coalesce(?, closed),"  # noqa: S608
            " deadline_said = max(deadline_said, ?) WHERE serving_version = ? AND version = ?",
            (closed, int(deadline_said), pair.serving, pair.challenger),
        )

    def _open_pair(self, serving: str, challenger: str, t: float) -> None:
        """The pair exists from now on, first seen at the earliest ``t`` given."""
        self._db.execute(
            f"INSERT INTO {self._pairs} (serving_version, version, first_seen)"  # noqa: S608
            " VALUES (?,?,?) ON CONFLICT (serving_version, version) DO UPDATE"
            " SET first_seen = min(first_seen, excluded.first_seen)",
            (serving, challenger, t),
        )

    def _counted(self, serving: str, challenger: str) -> None:
        """One more labelled row of the pair towards its next judgement."""
        self._db.execute(
            f"UPDATE {self._pairs} SET since_eval = since_eval + 1"  # noqa: S608
            " WHERE serving_version = ? AND version = ?",
            (serving, challenger),
        )
