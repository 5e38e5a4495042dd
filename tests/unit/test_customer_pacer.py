"""The simulator's pacer: a customer's payments at least the gap apart in wall time, in
order per customer, other customers never held."""

from __future__ import annotations

from driftloop_simulator._pace import CustomerPacer


def test_a_customers_next_payment_waits_for_the_gap_and_others_pass() -> None:
    pacer: CustomerPacer[str] = CustomerPacer(1.0)
    assert pacer.offer("a", "a1", now=0.0) == ["a1"]
    assert pacer.offer("a", "a2", now=0.2) == []  # a's previous left 0.2 s ago
    assert pacer.offer("b", "b1", now=0.3) == ["b1"]  # another customer is not held
    assert pacer.offer("a", "a3", now=0.4) == []  # behind a2, in order
    assert pacer.due(0.9) == [] and pacer.held == 2
    assert pacer.due(1.0) == ["a2"]  # one per gap: a3 waits a further second
    assert pacer.due(1.5) == []
    assert pacer.due(2.0) == ["a3"] and pacer.held == 0


def test_released_in_arrival_order_across_customers() -> None:
    pacer: CustomerPacer[str] = CustomerPacer(0.5)
    pacer.offer("a", "a1", now=0.0)
    pacer.offer("b", "b1", now=0.0)
    assert pacer.offer("a", "a2", now=0.1) == []
    assert pacer.offer("b", "b2", now=0.2) == []
    assert pacer.offer("c", "c1", now=0.3) == ["c1"]
    assert pacer.due(0.6) == ["a2", "b2"]


def test_no_gap_holds_nothing_and_flush_returns_what_is_held() -> None:
    free: CustomerPacer[int] = CustomerPacer(0.0)
    assert [free.offer("a", i, now=0.0) for i in range(3)] == [[0], [1], [2]]
    pacer: CustomerPacer[int] = CustomerPacer(10.0)
    assert pacer.offer("a", 1, now=0.0) == [1]
    assert pacer.offer("a", 2, now=0.0) == [] and pacer.offer("a", 3, now=0.0) == []
    assert pacer.flush() == [2, 3] and pacer.held == 0
