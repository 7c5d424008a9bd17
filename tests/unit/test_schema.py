from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fraudstream.schema import (
    KINDS,
    PaySimRecord,
    TxBatch,
    decode_paysim,
    encode_paysim,
    paysim_to_batch,
)

GOOD = {
    "step": 3,
    "type": "TRANSFER",
    "amount": 181.0,
    "nameOrig": "C1305486145",
    "oldbalanceOrg": 181.0,
    "newbalanceOrig": 0.0,
    "nameDest": "C553264065",
    "oldbalanceDest": 0.0,
    "newbalanceDest": 181.0,
    "isFraud": 1,
}


def enc(obj: object) -> bytes:
    return msgspec.json.encode(obj)


def test_valid_record_decodes_and_maps() -> None:
    records, positions, invalid = decode_paysim([enc(GOOD)])
    assert invalid == [] and positions == [0]
    batch = paysim_to_batch(records, ["t-0"])
    assert batch.tx_id == ["t-0"]
    assert KINDS[batch.kind[0]] == "TRANSFER"
    assert batch.event_time_ms[0] == 3 * 3_600_000  # start of the step hour without a timestamp
    assert batch.label.tolist() == [1]
    assert batch.account == ["C1305486145"] and batch.counterparty == ["C553264065"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", "not valid JSON"),
        (enc({k: v for k, v in GOOD.items() if k != "amount"}), "missing required field `amount`"),
        (enc({**GOOD, "amount": -5.0}), "`$.amount`"),
        (enc({**GOOD, "amount": "12.5"}), "got `str` - at `$.amount`"),
        (enc({**GOOD, "type": "REFUND"}), "`$.type`"),
        (enc({**GOOD, "nameOrig": ""}), "`$.nameOrig`"),
        (enc([1, 2, 3]), "Expected `object`, got `array`"),
        (None, "empty message value"),
    ],
)
def test_invalid_records_get_a_readable_reason(raw: bytes | None, expected: str) -> None:
    records, positions, invalid = decode_paysim([enc(GOOD), raw, enc(GOOD)])
    assert positions == [0, 2] and len(records) == 2
    assert [i.index for i in invalid] == [1]
    assert expected in invalid[0].reason


def test_optional_fields_and_fallback_time() -> None:
    pre_auth = {k: GOOD[k] for k in ("step", "type", "amount", "nameOrig", "nameDest")}
    records, _, invalid = decode_paysim([enc({**pre_auth, "txId": "abc"}), enc(pre_auth)])
    assert invalid == []
    batch = paysim_to_batch(records, ["k0", "k1"], [1000, 2000])
    assert batch.tx_id == ["abc", "k1"]
    assert batch.event_time_ms.tolist() == [1000, 2000]
    assert np.isnan(batch.new_balance_orig).all()
    assert batch.label.tolist() == [-1, -1]


def test_encode_round_trip() -> None:
    rec = PaySimRecord(step=1, type="CASH_OUT", amount=10.0, nameOrig="C1", nameDest="C2")
    records, _, invalid = decode_paysim([encode_paysim(rec)])
    assert invalid == [] and records == [rec]


def test_take_and_concat() -> None:
    records, _, _ = decode_paysim([enc({**GOOD, "amount": float(i)}) for i in range(4)])
    batch = paysim_to_batch(records, [f"t{i}" for i in range(4)])
    part = batch.take(np.array([3, 1]))
    assert part.tx_id == ["t3", "t1"] and part.amount.tolist() == [3.0, 1.0]
    joined = TxBatch.concat([part, batch])
    assert len(joined) == 6 and joined.tx_id[2:] == batch.tx_id
