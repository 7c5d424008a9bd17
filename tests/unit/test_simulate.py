from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from fraudstream.errors import ConfigError
from fraudstream.schema import PaySimRecord, decode_paysim, encode_paysim
from fraudstream.simulate import ROBOTS, PaySimSimulator, RateLimiter

HOUR_MS = 3_600_000
CUSTOMER = re.compile(r"C\d{9,10}")
MERCHANT = re.compile(r"M\d{9,10}")


@pytest.fixture(scope="module")
def rows() -> list[PaySimRecord]:
    """50k rows at the default parameters."""
    return PaySimSimulator(seed=7).next_batch(50_000)


@pytest.fixture(scope="module")
def fraud_rows() -> list[PaySimRecord]:
    """A slow (20 tx/s, ~50 min) fraud-heavy stream, so every robot finishes many attacks."""
    sim = PaySimSimulator(accounts=5_000, seed=11, rate_per_s=20.0, fraud_rate=0.04)
    return sim.next_batch(60_000)


def by_scenario(records: list[PaySimRecord], scenario: str) -> list[PaySimRecord]:
    return [r for r in records if r.fraudScenario == scenario]


def ends_before(records: list[PaySimRecord], margin_ms: int) -> int:
    last = records[-1].eventTimeMs
    assert last is not None
    return last - margin_ms


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_same_stream_however_batched() -> None:
    whole = PaySimSimulator(accounts=2_000, seed=5).next_batch(6_000)
    sim = PaySimSimulator(accounts=2_000, seed=5)
    pieces: list[PaySimRecord] = []
    for n in (1, 7, 1_000, 0, 4_992):
        pieces += sim.next_batch(n)
    assert pieces == whole


def test_different_seeds_differ() -> None:
    a = PaySimSimulator(accounts=2_000, seed=1).next_batch(500)
    b = PaySimSimulator(accounts=2_000, seed=2).next_batch(500)
    assert [r.nameOrig for r in a] != [r.nameOrig for r in b]
    assert [r.amount for r in a] != [r.amount for r in b]


# --- shape of the genuine traffic ---------------------------------------------------------------


def test_type_shares_match_paysim(rows: list[PaySimRecord]) -> None:
    counts = Counter(str(r.type) for r in rows)
    shares = {k: v / len(rows) for k, v in counts.items()}
    expected = {"CASH_OUT": 0.352, "PAYMENT": 0.338, "CASH_IN": 0.220, "TRANSFER": 0.084}
    for kind, share in expected.items():
        assert shares[kind] == pytest.approx(share, abs=0.012), kind
    assert shares["DEBIT"] == pytest.approx(0.0065, abs=0.002)


def test_ids_and_counterparties_look_like_paysim(rows: list[PaySimRecord]) -> None:
    for r in rows:
        assert r.txId is None
        assert CUSTOMER.fullmatch(r.nameOrig)
        pattern = MERCHANT if r.type in ("PAYMENT", "DEBIT") else CUSTOMER
        assert pattern.fullmatch(r.nameDest), r


def test_amounts_are_heavy_tailed_and_positive(rows: list[PaySimRecord]) -> None:
    for kind in ("PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN"):
        amounts = np.array([r.amount for r in rows if r.type == kind])
        assert amounts.min() > 0
        assert amounts.mean() > np.median(amounts)  # right-skewed
        assert np.percentile(amounts, 99) > 4 * np.median(amounts)


def test_balances_are_consistent_row_by_row(rows: list[PaySimRecord]) -> None:
    for r in rows:
        ob, nb = r.oldbalanceOrg, r.newbalanceOrig
        obd, nbd = r.oldbalanceDest, r.newbalanceDest
        assert ob is not None and nb is not None and obd is not None and nbd is not None
        if r.type == "CASH_IN":  # the agent (nameDest) pays cash into the customer's account
            assert nb == round(ob + r.amount, 2)
            assert nbd == max(round(obd - r.amount, 2), 0.0)
            continue
        assert nb == max(round(ob - r.amount, 2), 0.0)  # clipped at 0 on overdraft, as PaySim
        if r.type in ("PAYMENT", "DEBIT"):
            assert obd == nbd == 0.0  # merchants' balances are not tracked
        else:  # customer to customer: what leaves the origin arrives at the destination
            assert nbd == round(obd + r.amount, 2)


def test_balances_chain_from_one_transaction_to_the_next(rows: list[PaySimRecord]) -> None:
    last: dict[str, float] = {}
    checked = 0
    for r in rows:
        sides = [(r.nameOrig, r.oldbalanceOrg, r.newbalanceOrig)]
        if r.nameDest.startswith("C"):
            sides.append((r.nameDest, r.oldbalanceDest, r.newbalanceDest))
        for name, old, new in sides:
            assert old is not None and new is not None
            if name in last:
                assert old == last[name], (name, r)
                checked += 1
            last[name] = new
    assert checked > 40_000


def test_event_time_is_monotone_and_step_counts_hours() -> None:
    start_ms = 1_700_000_000_000
    sim = PaySimSimulator(accounts=1_000, seed=3, rate_per_s=2.0, start_ms=start_ms)
    records = sim.next_batch(20_000)
    times = np.array([r.eventTimeMs for r in records], dtype=np.int64)
    assert times[0] >= start_ms
    assert (np.diff(times) >= 0).all()
    assert [r.step for r in records] == ((times - start_ms) // HOUR_MS).tolist()
    assert records[-1].step >= 2  # 20k rows at 2/s span hours


def test_virtual_clock_runs_at_the_rate_with_a_daily_cycle() -> None:
    records = PaySimSimulator(accounts=1_000, seed=3, rate_per_s=1.0).next_batch(86_400)
    times = np.array([r.eventTimeMs for r in records], dtype=np.int64)
    assert np.diff(times).mean() == pytest.approx(1_000.0, rel=0.05)  # a day at 1/s
    per_hour = np.bincount((times // HOUR_MS) % 24, minlength=24)
    assert per_hour[1:4].sum() < 0.7 * per_hour[13:16].sum()  # quieter at night (UTC)


def test_default_rows_have_monotone_time(rows: list[PaySimRecord]) -> None:
    times = np.array([r.eventTimeMs for r in rows], dtype=np.int64)
    assert (np.diff(times) >= 0).all()
    assert 1.4 < np.diff(times).mean() < 3.0  # ~1/500 s, slower around midnight UTC


def test_legacy_flag_is_transfers_over_200k(rows: list[PaySimRecord]) -> None:
    for r in rows:
        assert r.isFlaggedFraud == int(r.type == "TRANSFER" and r.amount > 200_000)
    assert any(r.isFlaggedFraud for r in rows)


def test_every_record_round_trips_through_the_bank_format(rows: list[PaySimRecord]) -> None:
    decoded, positions, invalid = decode_paysim([encode_paysim(r) for r in rows])
    assert invalid == []
    assert positions == list(range(len(rows)))
    assert decoded == rows


def test_history_maps_onto_the_canonical_batch() -> None:
    sim = PaySimSimulator(accounts=1_000, seed=4)
    head = sim.next_batch(10)
    batch = sim.history(2_000)
    assert len(batch) == 2_000 and sim.emitted == 2_010 and len(head) == 10
    assert batch.tx_id[0] == "sim-4-10" and batch.tx_id[-1] == "sim-4-2009"
    assert set(batch.label.tolist()) <= {0, 1}
    assert (np.diff(batch.event_time_ms) >= 0).all()
    assert batch.event_time_ms[0] >= (head[-1].eventTimeMs or 0)


def test_genuine_behaviour_overlaps_with_fraud(rows: list[PaySimRecord]) -> None:
    genuine = [r for r in rows if not r.isFraud]
    emptying = [
        r
        for r in genuine
        if r.type == "TRANSFER" and r.amount == r.oldbalanceOrg and r.newbalanceOrig == 0.0
    ]
    assert len(emptying) > 20
    assert sum(r.type == "PAYMENT" and r.amount < 5 for r in genuine) > 50
    received_at: dict[str, int] = {}
    quick_cash_outs = 0
    for r in genuine:
        assert r.eventTimeMs is not None
        if r.type == "TRANSFER":
            received_at[r.nameDest] = r.eventTimeMs
        elif (
            r.type == "CASH_OUT" and r.eventTimeMs - received_at.get(r.nameOrig, -(10**12)) < 60_000
        ):
            quick_cash_outs += 1
    assert quick_cash_outs > 10


# --- robots -------------------------------------------------------------------------------------


def test_labels_match_scenarios_and_fraud_rate() -> None:
    records = PaySimSimulator(accounts=5_000, seed=9, rate_per_s=50.0).next_batch(300_000)
    for r in records:
        assert r.isFraud in (0, 1)
        assert (r.fraudScenario is not None) == (r.isFraud == 1)
    counts = Counter(r.fraudScenario for r in records if r.isFraud)
    # the compromise windows (robots 4, 5) fill up over time: a short stream is a little short
    assert sum(counts.values()) / len(records) == pytest.approx(0.003, rel=0.3)
    assert set(counts) == set(ROBOTS)
    for name in ROBOTS:
        assert counts[name] > 60, counts


def test_account_takeover_transfers_everything_then_the_mule_cashes_out(
    fraud_rows: list[PaySimRecord],
) -> None:
    ato = by_scenario(fraud_rows, "account_takeover")
    transfers = [r for r in ato if r.type == "TRANSFER"]
    cash_outs = [r for r in ato if r.type == "CASH_OUT"]
    assert len(transfers) > 50 and {r.type for r in ato} == {"TRANSFER", "CASH_OUT"}
    pending = {id(c): c for c in cash_outs}
    cutoff = ends_before(fraud_rows, 6 * 60_000)
    for t in transfers:
        assert t.oldbalanceOrg is not None and t.eventTimeMs is not None
        assert t.amount >= 0.9 * t.oldbalanceOrg or t.oldbalanceOrg < 1
        if t.eventTimeMs > cutoff:
            continue
        match = next(
            c
            for c in pending.values()
            if c.nameOrig == t.nameDest
            and c.eventTimeMs is not None
            and 5_000 - 1 <= c.eventTimeMs - t.eventTimeMs <= 300_001
            and 0.97 * t.amount - 0.01 <= c.amount <= t.amount + 0.01
        )
        del pending[id(match)]
        assert match.isFraud == 1 and t.isFraud == 1


def test_mule_fan_in_many_victims_one_fresh_account_then_cash_out(
    fraud_rows: list[PaySimRecord],
) -> None:
    fan = by_scenario(fraud_rows, "mule_fan_in")
    groups: dict[str, list[PaySimRecord]] = defaultdict(list)
    for r in fan:
        groups[r.nameDest if r.type == "TRANSFER" else r.nameOrig].append(r)
    first_seen: dict[str, int] = {}
    for r in fraud_rows:
        for name in (r.nameOrig, r.nameDest):
            first_seen.setdefault(name, r.eventTimeMs or 0)
    cutoff = ends_before(fraud_rows, 20 * 60_000)
    complete = 0
    for collector, steps in groups.items():
        transfers = [r for r in steps if r.type == "TRANSFER"]
        cash_outs = [r for r in steps if r.type == "CASH_OUT"]
        assert first_seen[collector] == transfers[0].eventTimeMs  # a fresh account
        assert transfers[0].oldbalanceDest == 0.0
        if (transfers[0].eventTimeMs or 0) > cutoff:
            continue
        assert 3 <= len({r.nameOrig for r in transfers}) == len(transfers) <= 10
        assert len(cash_outs) == 1 and cash_outs[0] is steps[-1]
        assert cash_outs[0].amount >= 0.97 * sum(r.amount for r in transfers) - 0.01
        complete += 1
    assert complete > 10


def test_card_testing_tiny_burst_then_one_large_payment(fraud_rows: list[PaySimRecord]) -> None:
    ct = by_scenario(fraud_rows, "card_testing")
    by_victim: dict[str, list[PaySimRecord]] = defaultdict(list)
    for r in ct:
        by_victim[r.nameOrig].append(r)
    attacks = 0
    for steps in by_victim.values():
        tiny: list[PaySimRecord] = []
        for r in steps:
            if r.type == "PAYMENT" and r.amount < 5:
                tiny.append(r)
                continue
            assert r.type in ("PAYMENT", "TRANSFER") and r.amount >= 1
            assert 3 <= len(tiny) <= 12, steps
            span = (tiny[-1].eventTimeMs or 0) - (tiny[0].eventTimeMs or 0)
            assert span <= 60_000
            tiny = []
            attacks += 1
    assert attacks > 20


def test_compromised_merchant_defrauds_a_share_of_its_customers_for_a_while(
    fraud_rows: list[PaySimRecord],
) -> None:
    frauds = by_scenario(fraud_rows, "compromised_merchant")
    assert {r.type for r in frauds} == {"PAYMENT"}
    merchants = Counter(r.nameDest for r in frauds)
    assert len(merchants) >= 3
    payments: dict[str, list[PaySimRecord]] = defaultdict(list)
    for r in fraud_rows:
        if r.type == "PAYMENT":
            payments[r.nameDest].append(r)
    windows = 0
    for merchant, n in merchants.items():
        seq = payments[merchant]
        hits = [i for i, r in enumerate(seq) if r.fraudScenario == "compromised_merchant"]
        window = seq[hits[0] : hits[-1] + 1]
        # a window is its next 20-80 drawn payments (micro-payment follow-ups come on top, and
        # a merchant may be breached twice)
        assert len(window) <= 2 * 80 * 1.2
        victims = {r.nameOrig for r in window if r.fraudScenario == "compromised_merchant"}
        assert len(victims) >= 0.7 * n  # many different customers are hit
        if n >= 10:  # a share of its customers, not all of them
            assert 0.1 < n / len(window) < 0.75, (merchant, n, len(window))
            windows += 1
        assert any(not r.isFraud for r in seq)  # the same merchant also serves genuine payments
    assert windows >= 2


def test_compromised_customer_a_third_of_debits_at_several_times_the_usual(
    fraud_rows: list[PaySimRecord],
) -> None:
    frauds = by_scenario(fraud_rows, "compromised_customer")
    assert "CASH_IN" not in {r.type for r in frauds} and len(frauds) > 30
    genuine = defaultdict(list)
    for r in fraud_rows:
        if not r.isFraud:
            genuine[r.type].append(r.amount)
    median = {kind: float(np.median(a)) for kind, a in genuine.items()}
    # 3-6 x the draw, unless the balance is smaller (then 80-100 % of the balance)
    uncapped = [r for r in frauds if r.amount < 0.8 * (r.oldbalanceOrg or 0.0) - 0.01]
    assert len(uncapped) > 10
    assert float(np.median([r.amount / median[r.type] for r in uncapped])) > 2.5
    mules = {r.nameDest for r in by_scenario(fraud_rows, "account_takeover")}
    for r in frauds:
        if r.type == "TRANSFER":
            assert r.nameDest in mules or CUSTOMER.fullmatch(r.nameDest)
    by_victim: dict[str, list[PaySimRecord]] = defaultdict(list)
    for r in fraud_rows:
        if r.type != "CASH_IN":
            by_victim[r.nameOrig].append(r)
    shares = []
    for victim in {r.nameOrig for r in frauds}:
        seq = by_victim[victim]
        hits = [i for i, r in enumerate(seq) if r.fraudScenario == "compromised_customer"]
        window = seq[hits[0] : hits[-1] + 1]
        assert len(window) <= 30
        if len(window) >= 6:
            shares.append(len(hits) / len(window))
    assert shares and 0.2 < float(np.mean(shares)) < 0.7


def test_only_named_robots_run() -> None:
    sim = PaySimSimulator(
        accounts=1_000, rate_per_s=20.0, robots=("card_testing",), fraud_rate=0.05
    )
    scenarios = {r.fraudScenario for r in sim.next_batch(5_000)}
    assert scenarios == {None, "card_testing"}
    quiet = PaySimSimulator(accounts=1_000, robots=())
    assert not any(r.isFraud for r in quiet.next_batch(5_000))


def test_robots_use_ordinary_accounts(fraud_rows: list[PaySimRecord]) -> None:
    genuine_origins = {r.nameOrig for r in fraud_rows if not r.isFraud}
    mules = {
        r.nameDest for r in by_scenario(fraud_rows, "account_takeover") if r.type == "TRANSFER"
    }
    assert mules & genuine_origins  # mules also live ordinary lives
    for r in fraud_rows:
        if r.isFraud:
            assert CUSTOMER.fullmatch(r.nameOrig)
            assert CUSTOMER.fullmatch(r.nameDest) or MERCHANT.fullmatch(r.nameDest)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"robots": ("account_takeover", "bank_robbery")},
        {"accounts": 5},
        {"merchants": 0},
        {"rate_per_s": 0.0},
        {"start_ms": -1},
        {"fraud_rate": 0.6},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PaySimSimulator(**kwargs)  # type: ignore[arg-type]


def test_negative_batch_size_is_rejected() -> None:
    with pytest.raises(ConfigError):
        PaySimSimulator(accounts=100).next_batch(-1)


# --- rate limiter -------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(rate: float, burst: float | None = None) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    return RateLimiter(rate, burst=burst, clock=fake.clock, sleep=fake.sleep), fake


def test_rate_limiter_spends_the_burst_then_waits() -> None:
    lim, fake = limiter(10.0, burst=5)
    lim.acquire(5)
    assert fake.sleeps == []
    lim.acquire(5)  # empty bucket: 5 tokens at 10/s
    assert fake.sleeps == [pytest.approx(0.5)]
    fake.now += 0.2  # 2 tokens back
    lim.acquire(2)
    assert fake.sleeps == [pytest.approx(0.5)]


def test_rate_limiter_caps_idle_refill_at_the_burst() -> None:
    lim, fake = limiter(100.0, burst=10)
    fake.now += 60.0
    lim.acquire(30)
    assert lim.tokens == pytest.approx(-20.0)
    assert fake.sleeps == [pytest.approx(0.2)]


def test_rate_limiter_long_run_rate_is_exact() -> None:
    lim, fake = limiter(500.0)  # default burst: 50 tokens
    for _ in range(1_000):
        lim.acquire(10)  # requests smaller and larger than the burst both work
    lim.acquire(120)
    assert fake.now == pytest.approx((10_000 + 120 - 50) / 500.0)


def test_rate_limiter_unlimited_never_sleeps() -> None:
    lim, fake = limiter(0.0)
    lim.acquire(1_000_000)
    assert fake.sleeps == []


def test_rate_limiter_rejects_a_non_positive_burst() -> None:
    with pytest.raises(ConfigError):
        RateLimiter(10.0, burst=0)
