"""Decisions through ``fraudstream serve`` use exactly the features ``detect`` computes for the
same sequence: the same records, once through the API and once produced straight to another
topic with the same keys and partitions, scored by two real detectors into two stores."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from fraudstream.api._records import PAYSIM_FORMAT
from fraudstream.broker import free_port
from fraudstream.model import Bundle

from ._api_stack import ApiServer, DetectorThread, api_env, detect_topic, make_keys

pytestmark = pytest.mark.integration

N = 240


def _sequence(unique: str, now_ms: int) -> list[dict[str, object]]:
    """Records of 12 accounts to 8 counterparties, 20 s apart, an hour ago."""
    rng = random.Random(7)
    start = now_ms - 3_600_000
    return [
        {
            "step": i // 180,
            "type": rng.choice(["PAYMENT", "TRANSFER", "CASH_OUT", "TRANSFER"]),
            "amount": round(rng.lognormvariate(6, 1.5), 2),
            "nameOrig": f"F{unique}-{rng.randrange(12)}",
            "nameDest": f"M{unique}-{rng.randrange(8)}",
            "oldbalanceOrg": round(rng.uniform(0, 5e4), 2),
            "txId": f"feat-{unique}-{i}",
            "eventTimeMs": start + 20_000 * i,
        }
        for i in range(N)
    ]


def _rows(db: Path, ids: list[str]) -> dict[str, tuple[bytes, float, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        marks = ", ".join("?" * len(ids))
        rows = conn.execute(
            "SELECT tx_id, features, score, decision FROM transactions_enriched "
            f"WHERE tx_id IN ({marks})",
            ids,
        ).fetchall()
    return {t: (bytes(f), s, d) for t, f, s, d in rows}


def test_features_through_the_api_equal_detect_on_the_same_sequence(
    bootstrap: str, models_dir: Path, bundle: Bundle, tmp_path: Path, unique: str
) -> None:
    client = {"bootstrap.servers": bootstrap}
    db, ref_db = tmp_path / "api.db", tmp_path / "ref.db"
    server = ApiServer(
        api_env(bootstrap, unique, db, models_dir, tmp_path, budget_ms=3_000),
        free_port(),
        tmp_path / "serve.log",
        tokens=make_keys(db),
    )
    detector = DetectorThread(client, unique, f"sqlite:///{db}", bundle, f"decisions-{unique}")
    records = _sequence(unique, int(time.time() * 1000))
    ids = [str(r["txId"]) for r in records]
    try:
        server.start()
        detector.start()
        answers = [server.post("/v1/decisions", r).json() for r in records]  # in sequence
    finally:
        detector.stop()
        server.stop()
    assert len(_rows(db, ids)) == N

    # the same records straight onto a topic, as `replay` or any producer would send them
    ref = f"ref-{unique}"
    parsed = [PAYSIM_FORMAT.parse(msgspec.json.encode(r)) for r in records]
    detect_topic(client, ref, [(p.key.encode(), p.value) for p in parsed], bundle, ref_db)

    api_rows, ref_rows = _rows(db, ids), _rows(ref_db, ids)
    assert len(ref_rows) == N
    differ = [i for i in ids if api_rows[i][0] != ref_rows[i][0]]
    assert not differ, f"features of {len(differ)} of {N} rows differ, first {differ[:3]}"
    # the same decisions; scores equal up to the last bits, which the model's batched arithmetic
    # (a matrix product over the batch) changes with the batch's size: one row here, many there
    assert [api_rows[i][2] for i in ids] == [ref_rows[i][2] for i in ids]
    assert [api_rows[i][1] for i in ids] == pytest.approx([ref_rows[i][1] for i in ids], rel=1e-9)
    decided = [a for a in answers if not a["fallback"]]
    assert decided, "every answer was a fallback"
    for a in decided:
        assert a["decision"] == ref_rows[a["tx_id"]][2]
        assert a["score"] == pytest.approx(ref_rows[a["tx_id"]][1], rel=1e-9)
    # the sequence exercised the account state (not only first transactions)
    names = bundle.feature_names
    import numpy as np

    count_1h = names.index("tx_count_by_account_1h")
    counts = [np.frombuffer(api_rows[i][0], "<f4")[count_1h] for i in ids]
    assert max(counts) >= 3
