from __future__ import annotations

import pytest

from driftloop.ledger import Ledger


def test_an_event_id_is_claimed_once(tmp_path):
    ledger = Ledger(tmp_path / "effects.sqlite")
    conn = ledger.connect()
    with ledger.transaction(conn):
        assert ledger.claim(conn, "e-1")
    with ledger.transaction(conn):
        assert not ledger.claim(conn, "e-1")
        assert ledger.claim(conn, "e-2")


def test_a_failed_effect_releases_its_claim(tmp_path):
    ledger = Ledger(tmp_path / "effects.sqlite")
    conn = ledger.connect()
    conn.execute("CREATE TABLE effects (event_id TEXT)")
    with pytest.raises(RuntimeError), ledger.transaction(conn):
        ledger.claim(conn, "e-1")
        conn.execute("INSERT INTO effects VALUES ('e-1')")
        raise RuntimeError("effect failed half-way")
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    with ledger.transaction(conn):
        assert ledger.claim(conn, "e-1")


def test_claims_survive_a_new_connection(tmp_path):
    path = tmp_path / "effects.sqlite"
    first = Ledger(path)
    conn = first.connect()
    with first.transaction(conn):
        first.claim(conn, "e-1")
    conn.close()
    second = Ledger(path)
    conn2 = second.connect()
    with second.transaction(conn2):
        assert not second.claim(conn2, "e-1")
