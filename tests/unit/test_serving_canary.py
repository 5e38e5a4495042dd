"""The canary declared in ``user_config``: which customers it answers (a stable hash, the
same in every process, close to the declared fraction) and what a config may declare."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path

import pytest
from driftloop_serving import ModelConfig, customer_bucket, in_canary
from pydantic import ValidationError

from driftloop.gitops import declared_canary, declared_shadow, set_canary, set_model

SERVE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "apps" / "fraud" / "serve.yaml"
SERVING, CANARY, SHADOW = "ab" * 32, "cd" * 32, "ef" * 32


def _uri(digest: str) -> str:
    return f"models:/fraud/sha256-{digest[:16]}"


def _ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"c-{rng.getrandbits(64):016x}" for _ in range(n)]


def test_the_split_is_a_function_of_the_id_alone():
    """The buckets are pinned: the first 8 bytes of the id's sha256, big-endian, modulo
    10,000 — the same in every process and replica (Python's salted hash() would not be;
    the Serve test checks replicas against this process). A change here moves customers
    between a canary and the serving version."""
    pinned = {"customer-1": 8135, "customer-2": 2256, "c-000": 5061, "é-ünïcode": 8365, "": 1652}
    assert {c: customer_bucket(c) for c in pinned} == pinned
    for c in _ids(1_000, seed=5):
        expected = int.from_bytes(hashlib.sha256(c.encode()).digest()[:8], "big") % 10_000
        assert customer_bucket(c) == expected
        assert in_canary(c, 0.3) == (expected < 3_000)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5])
def test_the_split_answers_the_declared_fraction_of_customers(fraction):
    n = 100_000
    picked = sum(in_canary(c, fraction) for c in _ids(n, seed=11))
    sd = math.sqrt(n * fraction * (1 - fraction))
    assert abs(picked - n * fraction) < 4 * sd, (picked, n * fraction, sd)


def test_a_customer_in_a_smaller_canary_is_in_every_larger_one():
    """Raising the fraction adds customers and never moves one back to the serving side."""
    for c in _ids(5_000, seed=3):
        if in_canary(c, 0.1):
            assert in_canary(c, 0.3)


def test_model_config_checks_a_canary_like_a_shadow():
    base = {"model_uri": _uri(SERVING), "model_digest": SERVING}
    canary = {"canary_uri": _uri(CANARY), "canary_digest": CANARY, "canary_fraction": 0.1}
    ok = ModelConfig.model_validate({**base, **canary})
    assert ok.canary_fraction == 0.1 and ok.canary_digest == CANARY
    cases = [
        ({**base, "canary_uri": _uri(CANARY), "canary_digest": CANARY}, "set together"),
        ({**base, "canary_uri": _uri(CANARY), "canary_fraction": 0.1}, "set together"),
        ({**base, **canary, "canary_digest": SHADOW}, "canary_digest is another file's"),
        (canary, "without a serving model"),
        ({**base, **canary, "canary_uri": _uri(SERVING), "canary_digest": SERVING},
         "the serving model itself"),
        ({**base, **canary, "canary_fraction": 0}, "greater than 0"),
        ({**base, **canary, "canary_fraction": 1}, "less than 1"),
        ({**base, **canary, "shadow_uri": _uri(SHADOW), "shadow_digest": SHADOW},
         "a canary and a shadow at once"),
    ]  # fmt: skip
    for raw, message in cases:
        with pytest.raises(ValidationError, match=message):
            ModelConfig.model_validate(raw)


def test_git_declares_a_canary_and_a_promotion_clears_it():
    text = set_model(SERVE_YAML.read_text(), "fraud", f"sha256-{SERVING[:16]}", SERVING)
    assert declared_canary(text, "fraud") == (None, None, None)
    with_canary = set_canary(text, "fraud", f"sha256-{CANARY[:16]}", CANARY, 0.25)
    assert declared_canary(with_canary, "fraud") == (_uri(CANARY), CANARY, 0.25)
    assert declared_shadow(with_canary, "fraud") == (None, None)
    changed = [
        line
        for old, line in zip(text.splitlines(), with_canary.splitlines(), strict=True)
        if old != line
    ]
    assert len(changed) == 3  # only the canary's values; comments and layout kept
    promoted = set_model(with_canary, "fraud", f"sha256-{CANARY[:16]}", CANARY)
    assert declared_canary(promoted, "fraud") == (None, None, None)
    removed = set_canary(with_canary, "fraud", None, None, None)
    assert removed == text
