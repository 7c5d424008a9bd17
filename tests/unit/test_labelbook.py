"""The label book: the documented rules (duplicates, contradictions, ties) and its indexes."""

from __future__ import annotations

import random

import numpy as np

from fraudstream.features import LabelBook
from fraudstream.features._state import keys_of
from fraudstream.schema import LabelMessage


def _lab(tx: str, label: int, at: int, source: str = "analyst", party: str = "M") -> LabelMessage:
    return LabelMessage(
        tx,
        label,  # type: ignore[arg-type]
        at,
        account=f"A-{tx}",
        counterparty=party,
        tx_time_ms=0,
        source=source,  # type: ignore[arg-type]
    )


def _to_party(book: LabelBook, party: str, t: int, window: int = 1_000) -> int:
    keys = keys_of([party])
    return int(book.counts().count("received_fraud", keys, np.array([t]), window)[0])


def test_a_later_contradicting_verdict_wins_from_its_own_time_on() -> None:
    book = LabelBook()
    r = book.add([_lab("t", 1, 10, "chargeback"), _lab("t", 0, 20, "analyst")])
    assert (r.applied, r.contradicting) == (2, 1)
    assert [book.fraud_at("t", x) for x in (9, 10, 19, 20, 99)] == [False, True, True, False, False]
    assert _to_party(book, "M", 15) == 1
    assert _to_party(book, "M", 25) == 0  # confirmed at 10, no longer in force at 25
    assert book.ever_fraud("t")


def test_ties_go_to_the_higher_source_then_to_fraud() -> None:
    book = LabelBook()
    book.add([_lab("a", 0, 10, "chargeback"), _lab("a", 1, 10, "analyst")])
    assert not book.fraud_at("a", 10)  # chargeback outranks analyst
    book.add([_lab("b", 0, 10, "analyst"), _lab("b", 1, 10, "analyst")])
    assert book.fraud_at("b", 10)  # same source: fraud


def test_duplicates_count_once_from_the_earliest_time() -> None:
    book = LabelBook()
    first = _lab("t", 1, 50, "chargeback")
    assert book.add([first, first]).duplicates == 1
    assert book.add([_lab("t", 1, 70, "chargeback")]).duplicates == 1
    assert not book.fraud_at("t", 49)
    r = book.add([_lab("t", 1, 30, "chargeback")])  # the same verdict, known earlier: counts
    assert r.applied == 1 and book.fraud_at("t", 30)
    assert _to_party(book, "M", 40, window=20) == 1


def test_the_outcome_does_not_depend_on_arrival_order() -> None:
    rng = random.Random(3)
    labels = []
    for _ in range(60):
        tx = rng.randrange(6)  # a transaction's parties are the same in all its labels
        source = rng.choice(["analyst", "chargeback", "dispute"])
        labels.append(_lab(f"t{tx}", rng.randrange(2), rng.randrange(100), source, f"M{tx % 3}"))
    t = np.arange(0, 120, 3)
    want = None
    for _ in range(5):
        rng.shuffle(labels)
        book = LabelBook()
        for i in range(0, len(labels), 7):  # in pieces, querying in between
            book.add(labels[i : i + 7])
            book.counts()
        got = [
            book.counts().count(role, keys_of([p] * len(t)), t, 40).tolist()
            for role in ("received_fraud", "received_genuine", "sent_fraud")
            for p in ("M0", "M1", "M2", "A-t0", "A-t1")
        ]
        want = got if want is None else want
        assert got == want


def test_incremental_index_equals_a_fresh_one() -> None:
    rng = random.Random(9)
    book = LabelBook()
    t = np.arange(0, 5_000, 37)
    parties = [f"M{i}" for i in range(40)]
    keys = keys_of([parties[i % 40] for i in range(len(t))])
    for step in range(30):
        book.add(
            _lab(
                f"t{rng.randrange(3_000)}",
                rng.randrange(2),
                rng.randrange(5_000),
                rng.choice(["analyst", "chargeback"]),
                party=rng.choice(parties),
            )
            for _ in range(150)
        )
        if step % 3 == 0:
            book.counts()
    fresh = LabelBook()
    fresh._tx = book._tx  # the same transactions, indexed from scratch
    for role in ("received_fraud", "received_genuine", "sent_fraud"):
        np.testing.assert_array_equal(
            book.counts().count(role, keys, t, 700), fresh.counts().count(role, keys, t, 700)
        )
        np.testing.assert_array_equal(
            book.counts().recent(role, keys, t, 700), fresh.counts().recent(role, keys, t, 700)
        )


def test_labels_without_the_transaction_are_returned_unresolved() -> None:
    book = LabelBook()
    bare = LabelMessage("x", 1, 5)
    r = book.add([bare])
    assert r.applied == 0 and r.unresolved == (bare,)
    assert "x" not in book
    book.add([_lab("x", 1, 5)])
    assert book.add([bare]).duplicates == 1  # known now: placed by the earlier label


def test_evict_forgets_old_transactions() -> None:
    book = LabelBook()
    book.add([_lab("old", 1, 10), _lab("new", 1, 1_000)])
    assert _to_party(book, "M", 1_000, window=10_000) == 2
    assert book.evict(500) == 1
    assert "old" not in book and "new" in book
    assert _to_party(book, "M", 1_000, window=10_000) == 1
    assert [tx for _, tx in book.frauds_of("counterparty", "M")] == ["new"]
