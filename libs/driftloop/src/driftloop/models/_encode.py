"""Model inputs as XGBoost reads them, from the preprocessing a version stores.

Training and serving both call :func:`encode_features` with the version's
:class:`FeatureSpec`, so a category means the same number in both places.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import JsonValue

from driftloop.models._metadata import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN_CATEGORY = -1.0
"""The code of a category the model never saw in training."""


def vocabularies(spec: FeatureSpec) -> dict[str, list[str]]:
    """Each categorical feature's vocabulary (its codes are the list positions)."""
    categorical = spec.preprocessing.get("categorical") or {}
    if not isinstance(categorical, dict):
        raise ValueError("preprocessing.categorical must be a mapping")
    out: dict[str, list[str]] = {}
    for feature in spec.features:
        if feature.type != "categorical":
            continue
        entry = categorical.get(feature.name)
        vocab = entry.get("vocabulary") if isinstance(entry, dict) else None
        if not isinstance(vocab, list):
            raise ValueError(f"categorical feature {feature.name} has no vocabulary")
        out[feature.name] = [str(v) for v in vocab]
    return out


def categorical_preprocessing(vocab: dict[str, list[str]]) -> dict[str, JsonValue]:
    """The ``preprocessing`` entry that :func:`vocabularies` reads back."""
    return {
        "categorical": {
            name: {
                "vocabulary": list[JsonValue](values),
                "unknown": UNKNOWN_CATEGORY,
                "missing": "NaN",
            }
            for name, values in vocab.items()
        },
        "numeric": "as is; null -> NaN",
    }


def encode_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Float32 columns in the model's order: categories by their index in the vocabulary
    (unseen ``-1``, null NaN), numbers as they are (null or unparsable NaN).

    A feature missing from ``frame`` is a :class:`KeyError` naming it."""
    import numpy as np
    import pandas as pd

    vocab = vocabularies(spec)
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise KeyError(f"missing model features: {', '.join(missing)}")
    out: dict[str, pd.Series] = {}
    for feature in spec.features:
        column = frame[feature.name]
        if feature.type == "categorical":
            index = {value: float(i) for i, value in enumerate(vocab[feature.name])}
            codes = [np.nan if pd.isna(v) else index.get(str(v), UNKNOWN_CATEGORY) for v in column]
            out[feature.name] = pd.Series(codes, index=frame.index, dtype="float32")
        else:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float32")
    return pd.DataFrame(out, index=frame.index)
