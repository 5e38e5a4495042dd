"""Training-serving skew per window (policy ``skew``, see ``SkewSpec``).

A prediction whose transaction id hashes into the sample keeps its served features; the
sampled transactions (entity keys, request inputs) are read from the ``transactions``
topic. When a data window closes, its comparison is due ``settle_s`` wall seconds later:
then the offline point-in-time features of the sampled transactions are read (as of one
microsecond before each, as training reads them: Feast's sources joined as Feast joins
them, see ``_asof``, or Feast's own join), compared with what was served, and the
window's record is rewritten with the figures.

All of it lives in the monitor's checkpoint, changed inside the transaction of the batch
that brought it, so a restart loses no sample and compares none twice.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driftloop.drift import AuditStore, SkewRecord, SkewSpec, WindowRecord, compare_skew
from driftloop.events import Transaction
from driftloop_monitor._asof import as_of
from driftloop_monitor._checkpoint import Checkpoint

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from driftloop.settings import Settings

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS skew_rows (
    transaction_id TEXT PRIMARY KEY, version TEXT NOT NULL, event_time REAL NOT NULL,
    features TEXT NOT NULL, seq INTEGER, stem TEXT);
CREATE TABLE IF NOT EXISTS skew_txn (
    transaction_id TEXT PRIMARY KEY, event_time REAL NOT NULL, request TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS skew_txn_time ON skew_txn (event_time);
CREATE TABLE IF NOT EXISTS skew_due (
    version TEXT NOT NULL, stem TEXT NOT NULL, start REAL NOT NULL, end_ REAL NOT NULL,
    due REAL NOT NULL, PRIMARY KEY (version, stem));
"""
ROW_INDEXES = """
DROP INDEX IF EXISTS skew_rows_time;
CREATE INDEX IF NOT EXISTS skew_rows_seq ON skew_rows (version, seq);
CREATE INDEX IF NOT EXISTS skew_rows_stem ON skew_rows (version, stem);
"""
"""Created once skew_rows has its columns (a checkpoint of 0.1 gains them first). Rows are
found by window row number and by window, no longer by time."""
KEEP_TXN = 50
"""Sampled transactions kept, in samples: those no prediction claimed are dropped oldest
first beyond ``KEEP_TXN * sample``."""


def in_sample(transaction_id: str, rate: float) -> bool:
    """Whether a transaction is in the skew sample: a hash of its id, so the prediction
    and the transaction agree without talking, and a replay samples the same rows."""
    return zlib.crc32(transaction_id.encode()) < rate * 2**32


def request_row(txn: Transaction) -> dict[str, Any]:
    """What an offline point-in-time query needs of a transaction besides its time: the
    entity keys and the request-time inputs (as serving's ``request_rows`` names them)."""
    return {
        "customer_id": txn.customer_id,
        "merchant_id": txn.merchant_id,
        "amount": float(txn.amount),
        "country": txn.country,
        "card_country": txn.card_country,
    }


@dataclass(frozen=True)
class Due:
    version: str
    stem: str
    start: float
    end: float


class SkewCheck:
    """The sample, and the comparisons of closed windows once they are due."""

    def __init__(
        self,
        spec: SkewSpec,
        window_rows: int | None,
        checkpoint: Checkpoint,
        audit: AuditStore,
        settings: Settings,
        feature_service: Any,
    ) -> None:
        self.spec = spec
        self.rate = min(1.0, spec.sample / float(window_rows or 2000))
        self.checkpoint = checkpoint
        self.audit = audit
        self.settings = settings
        self._feature_service = feature_service  # version -> feature service name, or None
        self._store: FeatureStore | None = None
        checkpoint.db.executescript(SCHEMA)
        columns = {row[1] for row in checkpoint.db.execute("PRAGMA table_info(skew_rows)")}
        for column, kind in (("seq", "INTEGER"), ("stem", "TEXT")):  # a checkpoint of 0.1
            if column not in columns:
                checkpoint.db.execute(f"ALTER TABLE skew_rows ADD COLUMN {column} {kind}")
        checkpoint.db.executescript(ROW_INDEXES)

    # --- inside the batch's transaction

    def prediction(
        self, transaction_id: str, version: str, t: float, features: dict[str, Any], seq: int
    ) -> None:
        """A prediction held in a window as row ``seq``: kept if it is in the sample."""
        if in_sample(transaction_id, self.rate):
            self.checkpoint.db.execute(
                "INSERT OR REPLACE INTO skew_rows VALUES (?,?,?,?,?,NULL)",
                (transaction_id, version, t, json.dumps(features), seq),
            )

    def transaction(self, txn: Transaction) -> None:
        if in_sample(txn.transaction_id, self.rate):
            self.checkpoint.db.execute(
                "INSERT OR REPLACE INTO skew_txn VALUES (?,?,?)",
                (txn.transaction_id, txn.event_time.timestamp(), json.dumps(request_row(txn))),
            )

    def prune(self) -> None:
        keep = KEEP_TXN * self.spec.sample
        self.checkpoint.db.execute(
            "DELETE FROM skew_txn WHERE transaction_id NOT IN (SELECT transaction_id FROM "
            "skew_txn ORDER BY event_time DESC LIMIT ?)",
            (keep,),
        )

    def closed(self, record: WindowRecord, seqs: list[int], now: float | None = None) -> None:
        """A data window of the rows ``seqs`` closed: its sampled rows are its own from now
        on, and compared ``settle_s`` from now. (Windows closed by count overlap in event
        time when partitions are read unevenly, as after a restart: a window's sample is
        the rows it held, not a time range.)"""
        due = (time.time() if now is None else now) + self.spec.settle_s
        self.checkpoint.db.execute(
            "UPDATE skew_rows SET stem = ? WHERE version = ? AND stem IS NULL AND (seq IN "
            "(SELECT value FROM json_each(?)) OR (seq IS NULL AND event_time BETWEEN ? AND ?))",
            (record.stem, record.version, json.dumps(seqs), record.start.timestamp(),
             record.end.timestamp()),
        )  # fmt: skip
        self.checkpoint.db.execute(
            "INSERT OR REPLACE INTO skew_due VALUES (?,?,?,?,?)",
            (record.version, record.stem, record.start.timestamp(), record.end.timestamp(), due),
        )

    # --- outside any batch

    def run_due(self, now: float | None = None) -> list[WindowRecord]:
        """Compare every window whose time has come; return the records rewritten."""
        now = time.time() if now is None else now
        rows = self.checkpoint.db.execute(
            "SELECT version, stem, start, end_ FROM skew_due WHERE due <= ? ORDER BY due", (now,)
        ).fetchall()
        out = []
        for version, stem, start, end in rows:
            record = self._compare(Due(version, stem, start, end))
            with self.checkpoint.transaction():
                if record is not None:
                    self.audit.write(record)
                self.checkpoint.db.execute(
                    "DELETE FROM skew_due WHERE version = ? AND stem = ?", (version, stem)
                )
                self.checkpoint.db.execute(
                    "DELETE FROM skew_rows WHERE version = ? AND stem = ?", (version, stem)
                )
            if record is not None:
                out.append(record)
        return out

    def _compare(self, due: Due) -> WindowRecord | None:
        path = self.audit.dir / due.version / f"{due.stem}.json"
        if not path.is_file():
            return None
        record = WindowRecord.model_validate_json(path.read_bytes())
        sample = self.checkpoint.db.execute(
            "SELECT r.transaction_id, r.event_time, r.features, t.request FROM skew_rows r "
            "LEFT JOIN skew_txn t USING (transaction_id) "
            "WHERE r.version = ? AND r.stem = ? ORDER BY r.event_time",
            (due.version, due.stem),
        ).fetchall()
        try:
            skew = self.figures(due.version, sample)
        except Exception as exc:  # a feature store that fails must not stop the monitor
            log.warning("skew check of %s %s failed: %s", due.version, due.stem, exc)
            skew = SkewRecord(sampled=len(sample), compared=0, tolerance=self.spec.tolerance,
                              max_share=self.spec.max_share, error=str(exc)[:500])  # fmt: skip
        if skew.skewed:
            log.warning("skew in %s window %s: %s", due.version, due.stem, ", ".join(skew.skewed))
        return record.model_copy(update={"skew": skew})

    def figures(self, version: str, sample: list[tuple[str, float, str, str | None]]) -> SkewRecord:
        """Served against offline features of the sampled rows whose transaction is known."""
        import pandas as pd

        known = [row for row in sample if row[3] is not None]
        if not known:
            return SkewRecord(sampled=len(sample), compared=0, tolerance=self.spec.tolerance,
                              max_share=self.spec.max_share)  # fmt: skip
        served = pd.DataFrame([json.loads(row[2]) for row in known])
        entities = pd.DataFrame([json.loads(row[3] or "{}") for row in known])
        times = pd.to_datetime([row[1] for row in known], unit="s", utc=True)
        entities["event_timestamp"] = times - pd.Timedelta(microseconds=1)
        entities["txn_unix"] = [row[1] for row in known]
        offline = self.offline(version, entities)
        return compare_skew(served, offline, list(served.columns), self.spec, len(sample))

    def offline(self, version: str, entities: pd.DataFrame) -> pd.DataFrame:
        """The offline point-in-time features of ``entities``, in their order."""
        from driftloop.features import open_store, point_in_time

        name = self._feature_service(version)
        if name is None:
            raise LookupError(f"no feature service known for version {version}")
        if self._store is None:
            self._store = open_store(self.settings)
        service = self._store.get_feature_service(name)
        if self.spec.join == "feast":
            return point_in_time(self._store, entities, service)
        return as_of(self._store, entities, service)
