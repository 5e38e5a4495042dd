"""The serving hot path against Feast's own: the compiled request-time features equal
Feast's on-demand view, the planned online read equals ``get_online_features``, and the
scoring plan's scores equal XGBoost on a DMatrix of the same rows.

A real Feast repository (SQLite online store, applied in this process) and a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftloop_serving import ModelSlot

from driftloop.features import OnlinePlan, open_store
from driftloop.features._compiled import COMPILED, NO_HISTORY_S, compiled_form
from driftloop.models import LoadedModel
from driftloop.settings import Settings
from tests.integration import serving_support as support
from tests.integration.monitor_support import apply_in_process

ROWS = 10_000


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root: Path = tmp_path_factory.mktemp("plan")
    base = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(support, "apply_repo", apply_in_process)  # no feast CLI process
        return support.feature_repo(base, root, "unit.")


def _random_context(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Inputs of ``transaction_context`` with every edge its code branches on."""
    mean = rng.gamma(2.0, 30.0, n)
    mean[rng.random(n) < 0.15] = np.nan  # no history
    mean[rng.random(n) < 0.05] = 0.0
    mean[rng.random(n) < 0.02] = -3.0
    txn = rng.uniform(1.6e9, 1.9e9, n)
    on_the_hour = rng.random(n) < 0.05  # hour boundaries, exactly and just below
    txn[on_the_hour] = np.round(txn[on_the_hour] / 3600) * 3600 - rng.choice([0, 1e-3], 1)
    last = txn - rng.exponential(3600.0, n)
    last[rng.random(n) < 0.15] = np.nan
    ahead = rng.random(n) < 0.05  # clock skew: the last payment after this one
    last[ahead] = txn[ahead] + rng.uniform(0, 60, ahead.sum())
    countries = np.array(["DE", "FR", "US", "NL"], dtype=object)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 40.0, n),
            "amount_mean_7d": mean,
            "last_txn_unix": last,
            "country": rng.choice(countries, n),
            "card_country": rng.choice(countries, n),
            "txn_unix": txn,
        }
    )


def test_every_shipped_on_demand_view_has_a_compiled_form(repo):
    store = open_store(repo)
    views = store.list_on_demand_feature_views()
    assert views, "the repository defines on-demand views"
    for view in views:
        udf = view.feature_transformation.udf_string  # type: ignore[union-attr]
        assert compiled_form(view.name, udf) is not None, (
            f"{view.name} changed in definitions.py: update its form in "
            "driftloop/features/_compiled.py (and its digest) to match"
        )
    assert compiled_form("transaction_context", "def other(): ...") is None
    assert set(COMPILED) == {view.name for view in views}


def test_compiled_request_features_equal_feasts_on_demand_view_on_10k_random_rows(repo):
    view = open_store(repo).get_on_demand_feature_view("transaction_context")
    frame = _random_context(np.random.default_rng(11), ROWS)
    assert view.feature_transformation is not None
    feast = view.feature_transformation.transform(frame)
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    compiled = COMPILED["transaction_context"].transform(columns)
    assert set(compiled) == {f.name for f in view.features}
    for name, values in compiled.items():
        expected = feast[name].to_numpy()
        assert values.dtype == expected.dtype, name
        np.testing.assert_array_equal(values, expected, err_msg=name)
    # the edges were there
    assert (compiled["amount_to_mean_7d"] == 1.0).sum() > 0.15 * ROWS
    assert (compiled["seconds_since_last_txn"] == NO_HISTORY_S).sum() > 0.1 * ROWS
    assert (compiled["seconds_since_last_txn"] == 0.0).sum() > 0.02 * ROWS
    assert set(np.unique(compiled["hour_of_day"])) == set(range(24))


def _requests(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        customer = support.CUSTOMERS[i % 20] if rng.random() < 0.8 else f"new-{i % 7}"
        merchant = support.MERCHANTS[i % 10] if rng.random() < 0.8 else f"shop-{i % 5}"
        body = support.transaction(
            i, customer, merchant, amount=float(rng.gamma(2.0, 40.0)),
            country=str(rng.choice(["DE", "FR"])),
        )  # fmt: skip
        out.append(body)
    return out


def test_the_planned_read_equals_feasts_online_features(repo):
    """Known and unknown customers and merchants, repeated keys: every feature of the
    service equal to what Feast's get_online_features answers for the same rows."""
    from driftloop_serving._scoring import ENTITY_KEYS, REQUEST_COLUMNS

    from driftloop.events import Transaction

    store = open_store(repo)
    service = store.get_feature_service("fraud_v1")
    plan = OnlinePlan(store, service)
    assert plan.compiled
    txns = [Transaction.model_validate(b) for b in _requests(300, seed=3)]
    keys = {key: [ENTITY_KEYS[key](t) for t in txns] for key in plan.entity_keys}
    request = {c: REQUEST_COLUMNS[c](txns) for c in plan.request_columns}
    got = plan.read(keys, request)
    rows = [
        {**{k: keys[k][i] for k in keys}, **{c: request[c][i] for c in request}}
        for i in range(len(txns))
    ]
    feast = store.get_online_features(features=service, entity_rows=rows).to_dict()
    for name in plan.names:
        expected = [np.nan if v is None else v for v in feast[name]]
        ours = got.values[name].tolist()
        if plan.kinds[name] == "text":
            assert ours == [None if v is np.nan else v for v in expected], name
        else:
            np.testing.assert_array_equal(np.array(ours, float), np.array(expected, float), name)
    unknown = [not c.startswith("c") for c in keys["customer_id"]]
    assert got.found("customer_aggregates").tolist() == [not u for u in unknown]
    assert 0 < sum(unknown) < len(txns)


def test_the_scoring_plan_scores_as_xgboost_on_a_dmatrix(repo):
    version = support.put_model(repo, support.fraud_features(repo), seed=5, threshold=0.5)
    slot = ModelSlot(repo, max_rows=64)
    slot.apply(support.user_config(version))
    active = slot.active
    assert active is not None
    from driftloop.events import Transaction

    txns = [Transaction.model_validate(b) for b in _requests(200, seed=9)]  # > max_rows
    batch = active.score(txns, now=1e10)
    model: LoadedModel = active.model
    frame = pd.DataFrame([batch.features(i) for i in range(len(txns))])
    reference = model.predict(frame)  # encode_features + DMatrix + predict
    np.testing.assert_allclose(batch.scores, reference, rtol=1e-6, atol=1e-7)
    assert len(set(batch.scores.round(6))) > 10  # the rows really differ
