"""predictions → the served-features log that training reads.

Every prediction the serving endpoint logged carries the features the model was served
with. Written here as one parquet file per batch, named by the batch's offsets of the
``predictions`` topic under ``<state_dir>/data/served/``, the file before the offsets are
saved: a crash in between rewrites the same file with the same rows, so nothing is lost
and nothing doubled. The dataset step trains on these values where a transaction has them
(what serving saw, stream lag and stale rows included) instead of recomputing them.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from driftloop.events import Prediction

SERVED_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()), ("event_timestamp", pa.timestamp("ns", tz="UTC")),
        ("model_name", pa.string()), ("model_version", pa.string()),
        ("request_id", pa.string()), ("features", pa.string()),
    ]
)  # fmt: skip
"""One row per logged prediction; ``features`` is the JSON object it was served with."""


def served_frame(predictions: list[Prediction]) -> pd.DataFrame:
    """The rows of a batch of predictions, in the batch's order."""
    return pd.DataFrame(
        {
            "transaction_id": [p.transaction_id for p in predictions],
            "event_timestamp": pd.to_datetime([p.event_time for p in predictions], utc=True),
            "model_name": [p.model_name for p in predictions],
            "model_version": [p.model_version for p in predictions],
            "request_id": [p.request_id for p in predictions],
            "features": [json.dumps(p.features, sort_keys=True) for p in predictions],
        }
    )
