"""What a shadow version costs the serving one (goal: the serving version's p50 with a
shadow at most 1.2x without), all in the same run, on the same transactions, online store
and serving model:

* ``inprocess``: the serving version's score of one payment and of a batch of 256, alone
  and followed by the shadow's score of the same rows on the same features
  (``ActiveModel.score_beside``, what the replica does per batch);
* on Ray Serve, two applications with the shipped ``serve.yaml`` limits, one serving v1
  alone and one serving v1 with v2 as its shadow: ``POST /predict`` at 1 client
  (``--requests`` a round) and ``/predict/batch`` with 256 payments a request, the two
  applications taking turns for ``--rounds`` rounds; the ratios are of the medians.

The load generator is this process on the same 2 cores (see ``bench/serving.py``). Needs
the stack (`make up`); uses its own topics, Feast repo, model store and applications,
all removed at the end.

    python bench/shadow.py [--rounds 3] [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentiles, record
from bench.serving import BATCH, KEY, bodies, drive
from driftloop.events import Transaction
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.settings import TOPICS, Settings
from tests.integration import serving_support as support


def inprocess(settings: Settings, config: dict[str, Any]) -> dict[str, float]:
    from driftloop_serving import ModelSlot

    slot = ModelSlot(settings)
    slot.apply(config)
    active, shadow = slot.active, slot.shadow
    assert active is not None and shadow is not None
    txns = [Transaction.model_validate(b) for b in bodies(2 * BATCH)]
    result: dict[str, float] = {}
    for name, size, repeat in (("one", 1, 3_000), ("batch256", BATCH, 300)):
        alone, beside = [], []
        for i in range(repeat):
            rows = txns[(i * size) % len(txns) :][:size]
            started = time.perf_counter()
            active.score(rows)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            shadow.score_beside(active.score(rows), rows)
            beside.append(time.perf_counter() - started)
        a, b = percentiles(alone)["p50"], percentiles(beside)["p50"]
        result |= {f"{name}_alone_p50_ms": a * 1e3, f"{name}_with_shadow_p50_ms": b * 1e3,
                   f"ratio_{name}_p50_with_over_without": b / a}  # fmt: skip
    return result


def main() -> None:
    from ray import serve

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    base = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    ensure_topics(base)
    settings = support.feature_repo(base, tmp, base.topic_prefix)
    spec = support.fraud_features(settings)
    v1 = support.put_model(settings, spec, 1, 0.5)
    v2 = support.put_model(settings, spec, 2, 0.4)
    alone = support.user_config(v1)
    shadowed = support.user_config(
        v1, shadow_uri=f"models:/{v2.name}/{v2.version}", shadow_digest=v2.sha256
    )
    support.connect_ray(settings)
    serve_args = support.serve_args(settings, api_key=KEY)
    apps = {"alone": support.app_name(), "shadowed": support.app_name()}
    results: dict[str, Any] = {}
    try:
        shipped = support.shipped_options()
        support.deploy(apps["alone"], serve_args, alone, **shipped)
        support.deploy(apps["shadowed"], serve_args, shadowed, **shipped)
        results |= {f"inprocess_{k}": v for k, v in inprocess(settings, shadowed).items()}
        one = [dict(b) for b in bodies(200)]
        batches = [{"transactions": bodies(BATCH, offset=BATCH * i)} for i in range(4)]
        measured: dict[str, dict[str, list[float]]] = {n: {"p50": [], "pps": []} for n in apps}
        for _ in range(args.rounds):
            for name, app in apps.items():
                url = f"{settings.serve_url}/{app}"
                single = drive(f"{url}/predict", 1, args.requests, one)
                many = drive(f"{url}/predict/batch", 2, 40, batches)
                assert single["failed"] == many["failed"] == 0, (name, single, many)
                measured[name]["p50"].append(single["p50_ms"])
                measured[name]["pps"].append(many["rps"] * BATCH)
            print(f"round {_ + 1}: done", flush=True)
    finally:
        for app in apps.values():
            serve.delete(app)
        admin = connect_admin(base)
        admin.delete_topics([base.topic(t) for t in TOPICS])
        admin.close()
    for name, numbers in measured.items():
        results[f"{name}_c1_predict_p50_ms"] = statistics.median(numbers["p50"])
        results[f"{name}_batch256_payments_per_s"] = statistics.median(numbers["pps"])
    results["ratio_c1_predict_p50_with_over_without_shadow"] = (
        results["shadowed_c1_predict_p50_ms"] / results["alone_c1_predict_p50_ms"]
    )
    results["ratio_batch256_payments_per_s_with_over_without_shadow"] = (
        results["shadowed_batch256_payments_per_s"] / results["alone_batch256_payments_per_s"]
    )
    results |= {"rounds": args.rounds, "requests_per_round": args.requests}
    record("shadow", results)


if __name__ == "__main__":
    main()
