from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from fraudstream.errors import ConfigError
from fraudstream.simulate import CARD_ROBOTS, CARD_START_MS, CardColumns, CardSimulator

DAY_S = 86_400


@pytest.fixture(scope="module")
def sim_and_rows() -> tuple[CardSimulator, CardColumns]:
    """About 120 days of the handbook's world (5,000 customers, 10,000 terminals)."""
    sim = CardSimulator(seed=3)
    return sim, sim.next_columns(1_150_000)


def test_same_seed_same_stream_however_batched() -> None:
    whole = CardSimulator(customers=300, seed=5).next_columns(20_000)
    sim = CardSimulator(customers=300, seed=5)
    parts = CardColumns.concat([sim.next_columns(n) for n in (1, 0, 777, 5_000, 14_222)])
    for name in CardColumns.__slots__:
        assert np.array_equal(getattr(parts, name), getattr(whole, name)), name
    other = CardSimulator(customers=300, seed=6).next_columns(20_000)
    assert not np.array_equal(other.amount, whole.amount)


def test_handbook_world_customers_use_terminals_within_the_radius(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    sim, c = sim_and_rows
    assert (np.diff(c.time_s) >= 0).all()
    assert np.array_equal(c.tx_id, np.arange(len(c)))
    ordinary = c.scenario != 4  # card testers also use far-away terminals
    d = np.linalg.norm(sim.customer_xy[c.customer] - sim.terminal_xy[c.terminal], axis=1)
    assert (d[ordinary] <= 5.0).all()
    in_day = c.time_s % DAY_S
    assert ((in_day > 0) & (in_day < DAY_S)).all()
    assert abs(np.median(in_day[ordinary]) - DAY_S / 2) < 600  # around noon
    days = c.time_s[-1] // DAY_S
    per_day = np.count_nonzero(c.time_s < days * DAY_S) / days
    assert per_day == pytest.approx(sim.mean_tx_per_day.sum(), rel=0.03)  # ~2 per customer
    genuine = c.scenario == 0
    assert 40 < c.amount[genuine].mean() < 60 and (c.amount >= 0).all()


def test_scenario_1_every_amount_over_220_is_a_fraud(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    _, c = sim_and_rows
    assert not (c.amount[c.scenario == 0] > 220).any()
    assert (c.amount[c.scenario == 1] > 220).all() and (c.scenario == 1).sum() > 100


def test_scenario_2_compromised_terminals_for_28_days(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    _, c = sim_and_rows
    hit = np.unique(c.terminal[c.scenario == 2])
    assert len(hit) > 100  # 2 a day
    for t in hit[:60]:
        at = c.terminal == t
        times, scen = c.time_s[at], c.scenario[at]
        frauds = times[scen == 2]
        assert (frauds[-1] - frauds[0]) < 2 * 28 * DAY_S  # at most two overlapping breaches
        between = (times >= frauds[0]) & (times <= frauds[-1])
        # every transaction there meanwhile is a fraud (scenario 3/4 may have claimed some)
        assert (scen[between] > 0).all()
        assert (scen[times < frauds[0]] != 2).all()


def test_scenario_3_compromised_customers_third_of_transactions_times_5(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    sim, c = sim_and_rows
    s3 = c.scenario == 3
    ratio = c.amount[s3] / sim.mean_amount[c.customer[s3]]
    assert np.median(ratio) == pytest.approx(5.0, rel=0.15)
    shares = []
    for cust in np.unique(c.customer[s3])[:150]:
        mine = c.customer == cust
        t, scen = c.time_s[mine], c.scenario[mine]
        first = t[scen == 3][0]
        window = (t >= first - first % DAY_S) & (t < first - first % DAY_S + 14 * DAY_S)
        if window.sum() >= 10:
            shares.append(np.mean(scen[window] == 3))
    assert np.mean(shares) == pytest.approx(1 / 3, abs=0.08)


def test_robot_card_testing_tiny_burst_then_large(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    sim, c = sim_and_rows
    idx = np.flatnonzero(c.scenario == 4)
    by_victim: dict[int, list[int]] = defaultdict(list)
    for i in idx.tolist():
        by_victim[int(c.customer[i])].append(i)
    attacks = 0
    for victim, rows in by_victim.items():
        tiny = [i for i in rows if c.amount[i] < 5]
        large = [i for i in rows if c.amount[i] >= 5]
        if len(large) != 1:  # two attacks on one customer: skip the ambiguous case
            continue
        assert 3 <= len(tiny) <= 12
        assert c.time_s[tiny].max() - c.time_s[tiny].min() < 60
        assert c.time_s[large[0]] > c.time_s[tiny].max()
        assert c.amount[large[0]] >= 3 * sim.mean_amount[victim] - 0.01
        attacks += 1
    assert attacks > 100


def test_fraud_share_is_near_the_handbooks(
    sim_and_rows: tuple[CardSimulator, CardColumns],
) -> None:
    _, c = sim_and_rows
    share = np.mean(c.scenario > 0)
    assert 0.006 < share < 0.013  # the handbook: 0.84 %, plus card testing


def test_robots_are_switchable() -> None:
    assert not CardSimulator(customers=500, robots=()).next_columns(50_000).scenario.any()
    only = CardSimulator(customers=500, robots=("card_testing",)).next_columns(50_000)
    assert set(np.unique(only.scenario).tolist()) == {0, 4}
    with pytest.raises(ConfigError):
        CardSimulator(robots=("bank_robbery",))


def test_records_carry_time_ids_and_labels() -> None:
    sim = CardSimulator(customers=200, seed=1)
    records = sim.next_batch(3_000)
    assert records[0].eventTimeMs >= CARD_START_MS
    assert [r.txId for r in records[:3]] == ["card-1-0", "card-1-1", "card-1-2"]
    for r in records:
        assert r.customerId.isdigit() and r.terminalId.isdigit()  # nothing marks a robot
        assert (r.isFraud == 1) == (r.fraudScenario in CARD_ROBOTS)
    batch = sim.history(10)
    assert batch.tx_id[0] == "card-1-3000" and len(batch) == 10
