"""Extra fields as card model inputs: codes, aggregates against a slow reference, missing and
unseen values, the decoder, and the simulator's category and channel."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.errors import ModelError
from fraudstream.features import CARD_FEATURES, CardExtras, CardFeatureEngine, ExtraField
from fraudstream.features._card_extras import distance_km
from fraudstream.model import Bundle, promote, train_bundle
from fraudstream.model._fdh import fdh_batch
from fraudstream.model._score import score_history
from fraudstream.schema import TxBatch, card_to_batch, decode_card, encode_card
from fraudstream.simulate import CardSimulator, card_table
from fraudstream.simulate._card_extras import Habits
from fraudstream.stream import ModelWatcher

from .test_card_columnar import _batch as _rows_batch

DAY_MS = 86_400_000
CATS = ("a", "b", "c", None)
SPEC = CardExtras(
    (
        ExtraField("cat", "categorical", vocabulary=("a", "b")),
        ExtraField("amount2", "numeric"),
        ExtraField("lat", "latitude", "home"),
        ExtraField("lon", "longitude", "home"),
        ExtraField("mlat", "latitude", "shop"),
        ExtraField("mlon", "longitude", "shop"),
    )
)


def _batch(times: list[int], customers: list[int], extras: dict[str, list[object]]) -> TxBatch:
    rows = [(t, c, i % 7, 10.0) for i, (t, c) in enumerate(zip(times, customers, strict=True))]
    b = _rows_batch(rows, [f"t{i}" for i in range(len(rows))])
    b.extras = extras
    return b


def _reference(
    times: list[int], customers: list[int], cats: list[object]
) -> list[tuple[float, int]]:
    """Share of the customer's earlier rows of the last 30 days in this row's category, and
    distinct categories of the last day's rows and this one, by brute force."""
    out = []
    for i, (t, c, v) in enumerate(zip(times, customers, cats, strict=True)):
        before = [j for j in range(i) if customers[j] == c]
        month = [cats[j] for j in before if times[j] > t - 30 * DAY_MS]
        share = math.nan if v is None or not month else sum(m == v for m in month) / len(month)
        day = {cats[j] for j in before if times[j] > t - DAY_MS} | {v}
        out.append((share, len(day - {None})))
    return out


rows = st.lists(
    st.tuples(st.integers(0, 3 * 60 * 24), st.integers(0, 3), st.sampled_from(CATS)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows, cut=st.integers(0, 60), partitions=st.integers(1, 3))
def test_category_aggregates_equal_a_brute_force_reference(
    rows: list[tuple[int, int, str | None]], cut: int, partitions: int
) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    times = [r[0] * 60 * 60_000 // 2 for r in rows]  # half-hours over 90 days
    customers = [r[1] for r in rows]
    cats: list[object] = [r[2] for r in rows]
    spec = CardExtras((ExtraField("cat", "categorical", vocabulary=("a",)),))
    engine = CardFeatureEngine(extras=spec, partitions=partitions)
    b = _batch(times, customers, {"cat": cats})
    cut = min(cut, len(b))
    parts = [b.take(np.arange(0, cut)), b.take(np.arange(cut, len(b)))]
    x = np.concatenate([engine.update_and_extract(p) for p in parts if len(p)])
    names = engine.feature_names
    share = x[:, names.index("cat_share_by_customer_30d")]
    distinct = x[:, names.index("cat_distinct_by_customer_1d")]
    want = _reference(times, customers, cats)
    np.testing.assert_allclose(share, [w[0] for w in want], rtol=1e-6)
    assert distinct.tolist() == [w[1] for w in want]
    code = x[:, names.index("cat")]
    expect = [math.nan if v is None else (0.0 if v == "a" else 1.0) for v in cats]
    np.testing.assert_array_equal(code, np.array(expect, dtype=np.float32))


def test_aggregates_survive_a_snapshot_and_restore() -> None:
    rng = np.random.default_rng(3)
    n = 400
    times = np.sort(rng.integers(0, 40 * DAY_MS, n)).tolist()
    customers = rng.integers(0, 5, n).tolist()
    cats: list[object] = rng.choice(["a", "b", "c"], n).tolist()
    b = _batch(times, customers, {"cat": cats})
    spec = CardExtras((ExtraField("cat", "categorical", vocabulary=("a", "b")),))
    whole = CardFeatureEngine(extras=spec).update_and_extract(b)
    first = CardFeatureEngine(extras=spec)
    head = first.update_and_extract(b.take(np.arange(200)))
    saved = first.save_partition(0)
    restored = CardFeatureEngine(extras=spec)
    assert restored.state_fingerprint() == first.state_fingerprint()
    assert restored.state_fingerprint() != CardFeatureEngine().state_fingerprint()
    restored.load_partition(0, saved)
    tail = restored.update_and_extract(b.take(np.arange(200, n)))
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)
    with pytest.raises(ValueError, match="state array"):
        CardFeatureEngine().load_partition(0, saved)


def test_missing_invalid_and_unseen_values_are_nan_or_their_own_code() -> None:
    n = 5
    extras: dict[str, list[object]] = {
        "cat": ["a", "b", "zzz", None, 7],  # 7: a number where text was declared
        "amount2": [1.5, "2.5", "abc", None, True],
        "lat": [48.85, 48.85, 91.0, None, "x"],
        "lon": [2.35, 2.35, 2.35, 2.35, 2.35],
        "mlat": [48.85, 51.5, 48.85, 48.85, 48.85],
        "mlon": [2.35, -0.12, 2.35, 2.35, 2.35],
    }
    b = _batch([i * 1000 for i in range(n)], [0] * n, extras)
    engine = CardFeatureEngine(extras=SPEC)
    x = engine.update_and_extract(b)
    names = engine.feature_names
    assert names[: len(CARD_FEATURES)] == CARD_FEATURES
    code = x[:, names.index("cat")]
    np.testing.assert_array_equal(code, [0, 1, 2, np.nan, 2])  # unseen (zzz, "7") -> 2
    np.testing.assert_array_equal(x[:, names.index("amount2")], [1.5, 2.5, np.nan, np.nan, 1.0])
    dist = x[:, names.index("distance_km_home_shop")]
    assert dist[0] == 0.0
    assert dist[1] == pytest.approx(343.5, abs=1.0)  # Paris - London
    assert np.isnan(dist[2:]).all()  # latitude out of range, missing, not a number
    assert np.isfinite(x[:, : len(CARD_FEATURES)]).all()


def test_distance_is_the_haversine_formula() -> None:
    lat1, lon1, lat2, lon2 = (np.array([v]) for v in (40.7128, -74.0060, 34.0522, -118.2437))
    assert distance_km(lat1, lon1, lat2, lon2)[0] == pytest.approx(3935.7, abs=1.0)


def test_vocabulary_is_learned_most_frequent_first_and_round_trips() -> None:
    declared = [ExtraField("cat", "categorical"), ExtraField("n", "numeric")]
    spec = CardExtras.learn(declared, {"cat": ["b", "a", "b", None, " c ", "NA"]}, 2)
    assert spec.categoricals[0].vocabulary == ("b", "a")
    assert CardExtras.from_dicts(spec.as_dicts()) == spec
    assert spec.categorical_features == ("cat",)


def test_a_message_with_wrong_extra_types_is_scored_not_dead_lettered() -> None:
    values = [
        msgspec.json.encode(
            {"customerId": "c1", "terminalId": "m1", "amount": 5.0, "eventTimeMs": 1000, **extra}
        )
        for extra in ({"cat": "a", "amount2": 1.0}, {"cat": [1, 2], "amount2": "oops"}, {})
    ]
    records, kept, invalid = decode_card(values, None, ("cat", "amount2"))
    assert kept == [0, 1, 2] and not invalid
    b = card_to_batch(records, ["x", "y", "z"], ("cat", "amount2"))
    assert b.extras == {"cat": ["a", [1, 2], None], "amount2": [1.0, "oops", None]}
    spec = CardExtras((SPEC.fields[0], SPEC.fields[1]))
    x = CardFeatureEngine(extras=spec).update_and_extract(b)
    np.testing.assert_array_equal(x[:, len(CARD_FEATURES)], [0, 2, np.nan])  # a list: unseen
    np.testing.assert_array_equal(x[:, len(CARD_FEATURES) + 1], [1.0, np.nan, np.nan])


def test_simulator_columns_do_not_depend_on_the_category_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = ("tx_id", "time_s", "customer", "terminal", "amount", "scenario")
    real = CardSimulator(customers=300, seed=5).next_columns(20_000)

    def nothing(self: Habits, customer: object, scenario: np.ndarray) -> tuple[np.ndarray, ...]:
        zero = np.zeros(len(scenario), dtype=np.int8)
        return zero, zero

    monkeypatch.setattr(Habits, "draw", nothing)
    plain = CardSimulator(customers=300, seed=5).next_columns(20_000)
    for f in fields:
        np.testing.assert_array_equal(getattr(real, f), getattr(plain, f))
    assert len(set(real.category.tolist())) > 5 and len(set(real.channel.tolist())) == 3


def test_simulated_messages_carry_the_file_columns_extras() -> None:
    """``simulate --format card`` to Kafka sends TX_CATEGORY and TX_CHANNEL, as the file has them,
    so a bundle trained on the file reads them live; the record is next_batch's."""
    sim = CardSimulator(customers=300, seed=4)
    table = pl.from_arrow(card_table(sim.next_columns(2_000), sim.start_ms))
    messages = CardSimulator(customers=300, seed=4).next_messages(2_000)
    records = CardSimulator(customers=300, seed=4).next_batch(2_000)
    assert [r for r, _ in messages] == records
    assert [x["TX_CATEGORY"] for _, x in messages] == table["TX_CATEGORY"].to_list()
    assert [x["TX_CHANNEL"] for _, x in messages] == table["TX_CHANNEL"].to_list()
    record, extra = messages[0]
    decoded, _, _ = decode_card([encode_card(record, extra)], None, ("TX_CATEGORY", "TX_CHANNEL"))
    batch = card_to_batch(decoded, ["x"], ("TX_CATEGORY", "TX_CHANNEL"))
    assert batch.extras == {
        "TX_CATEGORY": [extra["TX_CATEGORY"]],
        "TX_CHANNEL": [extra["TX_CHANNEL"]],
    }


def test_simulated_frauds_skew_to_online_but_genuine_customers_shop_online_too() -> None:
    c = CardSimulator(customers=500, seed=2).next_columns(50_000)
    online = c.channel == 2
    fraud = c.scenario > 0
    assert online[fraud].mean() > 1.5 * online[~fraud].mean()
    assert online[~fraud].mean() > 0.1


def test_a_bundle_with_extras_round_trips_and_scores_only_files_that_have_them(
    tmp_path: Path,
) -> None:
    sim = CardSimulator(customers=200, seed=6)
    frame = pl.from_arrow(card_table(sim.next_columns(20_000), sim.start_ms))
    assert isinstance(frame, pl.DataFrame)
    history = fdh_batch(frame, ("TX_CATEGORY", "TX_CHANNEL"))
    declared = [ExtraField("TX_CATEGORY", "categorical"), ExtraField("TX_CHANNEL", "categorical")]
    bundle = train_bundle(history, mode="card", gap_ms=DAY_MS, extras=declared, refit=True)
    assert set(bundle.extras.categoricals[1].vocabulary) == {"pos", "contactless", "online"}
    assert bundle.feature_names[-1] == "TX_CHANNEL_distinct_by_customer_1d"
    loaded = Bundle.load(bundle.save(tmp_path))
    assert loaded.extras == bundle.extras and loaded.feature_names == bundle.feature_names
    want = score_history(bundle, history).score
    np.testing.assert_array_equal(score_history(loaded, history).score, want)
    with pytest.raises(ModelError, match="TX_CATEGORY, TX_CHANNEL.*--schema"):
        score_history(loaded, fdh_batch(frame))
    # a promoted bundle with other vocabularies (the same feature names) is not hot-loaded
    other = tmp_path / "99991231T000000Z-other"
    shutil.copytree(loaded.path, other)
    manifest = json.loads((other / "bundle.json").read_text())
    manifest["extras"][1]["vocabulary"].reverse()
    (other / "bundle.json").write_text(json.dumps(manifest))
    assert Bundle.load(other).feature_names == loaded.feature_names
    promote(tmp_path, other.name)
    assert ModelWatcher(tmp_path, loaded, check_every_s=0.0).poll() is None
