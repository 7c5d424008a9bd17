from __future__ import annotations

import numpy as np

from fraudstream.schema import KINDS, CardRecord, card_to_batch, decode_card, encode_card

GOOD = CardRecord(
    customerId="596",
    terminalId="3156",
    amount=57.16,
    eventTimeMs=1_522_540_831_000,
    txId="0",
    isFraud=0,
)


def test_round_trip_with_and_without_optional_fields() -> None:
    bare = CardRecord(customerId="1", terminalId="2", amount=0.0, eventTimeMs=0)
    labelled = CardRecord(
        customerId="7",
        terminalId="9",
        amount=1_250.5,
        eventTimeMs=5,
        isFraud=1,
        fraudScenario="compromised_terminal",
    )
    values = [encode_card(r) for r in (GOOD, bare, labelled)]
    assert b"txId" not in values[1] and b"isFraud" not in values[1]  # omitted, not null
    records, positions, invalid = decode_card(values)
    assert records == [GOOD, bare, labelled] and positions == [0, 1, 2] and invalid == []


def test_bad_records_are_reported_one_by_one_without_raising() -> None:
    values: list[bytes | None] = [
        b"not json",
        None,
        b'{"customerId": "1", "terminalId": "2", "amount": -3, "eventTimeMs": 0}',
        b'{"customerId": "1", "terminalId": "2", "amount": "3", "eventTimeMs": 0}',
        b'{"customerId": "1", "amount": 3, "eventTimeMs": 0}',
        b'{"customerId": "", "terminalId": "2", "amount": 3, "eventTimeMs": 0}',
        b'{"customerId": "1", "terminalId": "2", "amount": 3, "eventTimeMs": 0, "isFraud": 2}',
        encode_card(GOOD),
    ]
    records, positions, invalid = decode_card(values)
    assert records == [GOOD] and positions == [7]
    reasons = {bad.index: bad.reason for bad in invalid}
    assert sorted(reasons) == [0, 1, 2, 3, 4, 5, 6]
    assert reasons[0].startswith("not valid JSON")
    assert "tombstone" in reasons[1]
    assert "$.amount" in reasons[2] and "$.amount" in reasons[3]
    assert "terminalId" in reasons[4]
    assert "$.customerId" in reasons[5] and "$.isFraud" in reasons[6]
    assert all(r.startswith("invalid card transaction") for i, r in reasons.items() if i >= 2)


def test_maps_onto_the_canonical_batch() -> None:
    other = CardRecord(customerId="8", terminalId="1", amount=2.5, eventTimeMs=7_200_000)
    batch = card_to_batch([GOOD, other], ["fallback-0", "fallback-1"])
    assert batch.tx_id == ["0", "fallback-1"]
    assert batch.account == ["596", "8"] and batch.counterparty == ["3156", "1"]
    assert batch.event_time_ms.tolist() == [1_522_540_831_000, 7_200_000]
    assert batch.step.tolist() == [1_522_540_831_000 // 3_600_000, 2]
    assert [KINDS[k] for k in batch.kind] == ["PAYMENT", "PAYMENT"]
    assert batch.amount.tolist() == [57.16, 2.5]
    assert batch.label.tolist() == [0, -1]  # unknown label
    assert np.isnan(batch.old_balance_orig).all() and np.isnan(batch.new_balance_dest).all()
    assert batch.scenario == [None, None]
