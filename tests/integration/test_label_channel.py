"""Labels come only on their own topic; transactions carry no ``isFraud``.

Two detector processes share a 4-partition topic: the second joins mid-run (a rebalance), then
the first is killed with ``kill -9`` and restarted. Labels (analyst verdicts seconds after a
fraud, some reversed later, some produced long before they are due) are interleaved with the
transactions. Every stored feature vector, label features included, equals the offline
training replay's over the same transactions and labels. A second test feeds the detector bad
labels: malformed, a wrong id, duplicates, contradicting, incomplete ones and one for a
transaction that never comes.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

from fraudstream.features import LABEL_FEATURES, PRE_AUTH_FEATURES, LabelBook
from fraudstream.model import Bundle
from fraudstream.model._train import label_book, replay
from fraudstream.schema import (
    LabelMessage,
    PaySimRecord,
    encode_label,
    encode_paysim,
    paysim_to_batch,
)
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import LabelReader, ensure_topics

from ._kafka_util import produce_raw, read_topic
from ._procs import (
    count_rows,
    detector_env,
    start_detector,
    stored_features,
    wait_for_output,
    wait_for_rows,
)

pytestmark = pytest.mark.integration

N = 40_000


def _history(seed: int, n: int) -> tuple[list[PaySimRecord], list[PaySimRecord]]:
    """(records as a bank sends them: an id, no answer key; the simulator's originals)."""
    truth = [
        msgspec.structs.replace(r, txId=f"tx-{seed}-{i}")
        for i, r in enumerate(PaySimSimulator(accounts=3_000, seed=seed).next_batch(n))
    ]
    sent = [msgspec.structs.replace(r, isFraud=None, fraudScenario=None) for r in truth]
    return sent, truth


def _labels(truth: list[PaySimRecord], rng: random.Random) -> list[LabelMessage]:
    """Analyst verdicts 0.5-20 s after each fraud; a fifth reversed 30 s later; a few genuine
    transactions disputed as fraud."""
    out: list[LabelMessage] = []
    for r in truth:
        t = r.eventTimeMs
        assert t is not None and r.txId is not None
        facts = {"account": r.nameOrig, "counterparty": r.nameDest, "tx_time_ms": t}
        if r.isFraud:
            known = t + rng.randint(500, 20_000)
            out.append(LabelMessage(r.txId, 1, known, source="analyst", **facts))
            if rng.random() < 0.2:
                out.append(LabelMessage(r.txId, 0, known + 30_000, source="analyst", **facts))
        elif rng.random() < 0.001:
            out.append(LabelMessage(r.txId, 1, t + 5_000, source="dispute", **facts))
    return out


def _interleaved(
    sent: list[PaySimRecord], labels: list[LabelMessage], ahead: float, rng: random.Random
) -> list[tuple[str, list[tuple[bytes, bytes | None]]]]:
    """(topic kind, records) chunks: each label before the first transaction at or after its
    time; a share ``ahead`` of the labels at the very start."""
    early = [lab for lab in labels if rng.random() < ahead]
    due = sorted((lab for lab in labels if lab not in early), key=lambda x: x.labelled_at_ms)
    chunks: list[tuple[str, list[tuple[bytes, bytes | None]]]] = [("labels", _label_items(early))]
    k = 0
    txs: list[tuple[bytes, bytes | None]] = []
    for r in sent:
        assert r.eventTimeMs is not None
        ready = []
        while k < len(due) and due[k].labelled_at_ms <= r.eventTimeMs:
            ready.append(due[k])
            k += 1
        if ready:
            chunks += [("tx", txs), ("labels", _label_items(ready))]
            txs = []
        txs.append((r.nameOrig.encode(), encode_paysim(r)))
    chunks += [("tx", txs), ("labels", _label_items(due[k:]))]
    return [(kind, items) for kind, items in chunks if items]


def _label_items(labels: list[LabelMessage]) -> list[tuple[bytes, bytes | None]]:
    return [((lab.account or lab.tx_id).encode(), encode_label(lab)) for lab in labels]


def test_stored_features_equal_the_training_replay_across_rebalance_and_kill_9(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
    bundle: Bundle,
) -> None:
    topics = {k: f"{k}-{unique}" for k in ("tx", "alerts", "dlq", "labels")}
    ensure_topics(client, list(topics.values()), partitions=4)
    rng = random.Random(5)
    sent, truth = _history(21, N)
    labels = _labels(truth, rng)
    chunks = _interleaved(sent, labels, ahead=0.25, rng=rng)

    def produce_until(rows: int) -> None:
        """Produce chunks (in order) until ``rows`` transactions are out."""
        nonlocal done
        while chunks and done < rows:
            kind, items = chunks.pop(0)
            produce_raw(client, topics[kind], items)
            done += len(items) if kind == "tx" else 0

    done = 0
    produce_until(12_000)
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    group = f"g-{unique}"
    env_a = detector_env(bootstrap, unique, db_a, models_dir, tmp_path, group)
    a = start_detector(env_a)
    wait_for_rows(a, db_a, 12_000, timeout_s=120)
    b = start_detector(detector_env(bootstrap, unique, db_b, models_dir, tmp_path, group))
    deadline = time.monotonic() + 90
    while count_rows(db_b, "transactions_enriched") == 0 and time.monotonic() < deadline:
        assert b.poll() is None, b.stdout.read().decode() if b.stdout else ""
        produce_until(done + 300)
        time.sleep(0.3)
    produce_until(28_000)
    deadline = time.monotonic() + 60
    while count_rows(db_a, "transactions_enriched") < 16_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    a = start_detector(env_a)
    # the restarted member joins before the end: a SIGTERM must not find it still importing
    # (it then dies by the signal, code -15, before its handler is installed)
    head_a = wait_for_output(a, "assigned", timeout_s=120)
    produce_until(N + 1)  # everything, the labels due after the last transaction too
    assert not chunks and done == N
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rows = {**stored_features(db_a), **stored_features(db_b)}
        if len(rows) == N:
            break
        time.sleep(0.5)
    for proc in (a, b):
        proc.send_signal(signal.SIGTERM)
    out_a, out_b = (p.communicate(timeout=60)[0].decode() for p in (a, b))
    out_a = head_a + out_a
    assert a.returncode == 0 and b.returncode == 0, out_a[-3000:] + out_b[-3000:]

    first, second = stored_features(db_a), stored_features(db_b)
    union = {**first, **second}
    assert len(union) == N
    assert {p for p, _ in second.values()} < {0, 1, 2, 3}, "the second process owned some"

    history = paysim_to_batch(sent, [r.txId or "" for r in sent])
    want = replay(history, "pre_auth", partitions=4, labels=label_book(labels))
    names = list(PRE_AUTH_FEATURES)
    mismatched = [tx for i, tx in enumerate(history.tx_id) if union[tx][1] != want[i].tolist()]
    assert not mismatched, f"{len(mismatched)} rows differ, e.g. {mismatched[:3]}"
    label_cols = [names.index(f) for f in LABEL_FEATURES]
    lit = np.count_nonzero(want[:, label_cols].any(axis=1))
    assert lit > 500, f"label features must be non-zero on many rows for this to mean much: {lit}"
    with sqlite3.connect(db_b) as conn:
        recorded = conn.execute("SELECT count(*) FROM labels").fetchone()[0]
    assert recorded == len({lab.label_id for lab in labels})


def test_bad_labels_are_handled_as_documented(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    topics = {k: f"{k}-{unique}" for k in ("tx", "alerts", "dlq", "labels")}
    ensure_topics(client, list(topics.values()), partitions=4)
    sent, truth = _history(31, 6_000)
    first, later = sent[:3_000], sent[3_000:]
    # a transaction 8 days on: the label for a transaction never seen has waited long enough
    assert later[-1].eventTimeMs is not None
    late = msgspec.structs.replace(
        later[-1], txId="tx-late", eventTimeMs=later[-1].eventTimeMs + 8 * 86_400_000
    )
    r0, r1, r9 = truth[10], truth[20], truth[4_000]
    assert r0.eventTimeMs is not None and r1.eventTimeMs is not None
    assert r0.txId is not None and r1.txId is not None and r9.txId is not None
    fraud = LabelMessage(
        r0.txId,
        1,
        r0.eventTimeMs + 1,
        account=r0.nameOrig,
        counterparty=r0.nameDest,
        tx_time_ms=r0.eventTimeMs,
    )
    reversed_ = msgspec.structs.replace(
        fraud, label=0, labelled_at_ms=fraud.labelled_at_ms + 9, label_id=None
    )
    from_store = LabelMessage(r1.txId, 1, r1.eventTimeMs + 5, account=r1.nameOrig)
    from_stream = LabelMessage(r9.txId, 1, 1, account=r9.nameOrig)  # before its transaction
    never = LabelMessage("tx-nobody", 1, 1, account="C-nobody")
    raw = [
        (b"k", b"{not json"),
        (b"k", encode_label(fraud).replace(fraud.label_id.encode(), b"0" * 32)),
        (b"k", encode_label(fraud)),
        (b"k", encode_label(fraud)),  # duplicate
        (b"k", encode_label(reversed_)),  # contradicting
        (b"k", encode_label(from_stream)),
        (b"k", encode_label(never)),
    ]
    produce_raw(client, topics["tx"], [(r.nameOrig.encode(), encode_paysim(r)) for r in first])
    produce_raw(client, topics["labels"], raw)
    db = tmp_path / "store.db"
    env = detector_env(bootstrap, unique, db, models_dir, tmp_path)
    proc = start_detector(env)
    wait_for_rows(proc, db, 3_000, timeout_s=120)
    produce_raw(client, topics["labels"], [(b"k", encode_label(from_store))])  # tx stored
    produce_raw(client, topics["tx"], [(r.nameOrig.encode(), encode_paysim(r)) for r in later])
    wait_for_rows(proc, db, 6_000, timeout_s=120)
    time.sleep(6)  # the pending label's next store lookup
    produce_raw(client, topics["tx"], [(late.nameOrig.encode(), encode_paysim(late))])
    wait_for_rows(proc, db, 6_001, timeout_s=60)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out[-3000:]

    dead = {m.value(): dict(m.headers() or []) for m in read_topic(client, topics["dlq"], expect=3)}
    reasons = [h["fraudstream.error"].decode() for h in dead.values()]
    assert len(dead) == 3, reasons
    assert any("not JSON" in r for r in reasons), reasons
    assert any("label_id" in r for r in reasons), reasons
    assert any("never seen" in r and "tx-nobody" in r for r in reasons), reasons
    with sqlite3.connect(db) as conn:
        got = dict(conn.execute("SELECT tx_id || ':' || label, counterparty FROM labels"))
    assert got == {
        f"{r0.txId}:1": r0.nameDest,
        f"{r0.txId}:0": r0.nameDest,
        f"{r1.txId}:1": r1.nameDest,  # completed from the store
        f"{r9.txId}:1": r9.nameDest,  # completed from its transaction in the stream
    }
    flat = " ".join(out.replace("│", " ").split())
    assert "applied / duplicate / contradicting 4 / 1 / 1" in flat, flat[-2000:]
    assert "invalid / waiting for their transaction / never seen 2 / 0 / 1" in flat, flat[-2000:]


def test_every_label_appended_before_a_poll_is_applied_by_it(
    client: dict[str, str], unique: str
) -> None:
    """The guarantee the exact features rest on: ``poll()`` reads the topic to its end."""
    topic = f"labels-{unique}"
    ensure_topics(client, [topic], partitions=4)
    dead: list[str] = []
    reader = LabelReader(
        client, topic, LabelBook(), dead_letter=lambda _v, _k, why, _s: dead.append(why)
    )
    try:
        assert reader.catch_up() == []
        for i in range(30):
            lab = LabelMessage(
                f"t{i}", 1, i, account=f"C{i}", counterparty="M", tx_time_ms=0, source="rule"
            )
            produce_raw(client, topic, [(f"C{i}".encode(), encode_label(lab))])
            assert reader.poll() == [lab], f"label {i} was appended but not applied"
        assert reader.stats.late == 0 and not dead
    finally:
        reader.close()


def test_a_sync_that_times_out_reconnects_with_a_longer_wait_and_loses_nothing(
    client: dict[str, str], unique: str
) -> None:
    """The embedded broker answers a fetch slower than the wait with nothing: a poll that cannot
    reach the end in time makes a new consumer (4x the wait) that goes on from where it was."""
    topic = f"labels-{unique}"
    ensure_topics(client, [topic], partitions=4)
    labels = [
        LabelMessage(f"t{i}", 1, i, account=f"C{i}", counterparty="M", tx_time_ms=0, source="rule")
        # over 1 MiB per partition: more than one fetch (max.partition.fetch.bytes) can bring
        for i in range(20_000)
    ]
    reader = LabelReader(
        client, topic, LabelBook(), dead_letter=lambda *_: None, sync_timeout_s=0.0
    )
    try:
        produce_raw(client, topic, [(lab.tx_id.encode(), encode_label(lab)) for lab in labels])
        first = reader.poll()  # cannot reach the end in no time
        assert reader.stats.late == 1 and reader.fetch_wait_ms == 40
        reader.sync_timeout_s = 10.0
        rest = reader.poll()
        assert sorted(x.tx_id for x in first + rest) == sorted(x.tx_id for x in labels)
        assert reader.stats.duplicates == 0 and reader.stats.applied == len(labels)
    finally:
        reader.close()
