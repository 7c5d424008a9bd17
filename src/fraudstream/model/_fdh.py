"""The Fraud Detection Handbook's evaluation protocols (Chapters 3 and 5), reproduced exactly.

Le Borgne, Siblini, Lebichot, Bontempi, *Reproducible Machine Learning for Credit Card Fraud
Detection — Practical Handbook* (ULB). Features come from
:class:`~fraudstream.features.CardFeatureEngine`, replayed over the whole history in time order,
with labels from their own channel: :func:`fdh_labels` turns the handbook's ``TX_FRAUD`` into
label records known 7 days after each transaction (the handbook's delay), and the features and
the protocols' ground truth read those labels, never ``TX_FRAUD`` itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from fraudstream.features import FDH_FEATURES, CardFeatureEngine
from fraudstream.features._card import CARD_FEATURES, DAY_MS
from fraudstream.schema import LabelMessage, TxBatch

__all__ = [
    "FdhData",
    "card_precision_at_k",
    "fdh_batch",
    "fdh_features",
    "fdh_labels",
    "load_fdh",
    "run_ch3",
    "run_ch5",
    "train_test_split",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Protocol = Literal["fdh-ch3", "fdh-ch5"]
ModelName = Literal["logreg", "lgbm"]
#: Day 0 of ``TX_TIME_DAYS``.
ORIGIN: Final = dt.datetime(2018, 4, 1, tzinfo=dt.UTC)
_TOP_K: Final = 100


@dataclass(frozen=True)
class FdhData:
    """The handbook's columns as arrays, plus features (all rows, time order)."""

    customer: I64
    day: I64
    time_ms: I64
    label: npt.NDArray[np.int8]
    x: F32
    names: tuple[str, ...]


def load_fdh(path: Path) -> pl.DataFrame:
    """The parquet file, sorted by time (then transaction id)."""
    return pl.read_parquet(path).sort(["TX_DATETIME", "TRANSACTION_ID"])


def fdh_batch(df: pl.DataFrame, extras: Collection[str] = ()) -> TxBatch:
    """Canonical batch: account = customer, counterparty = terminal; balances absent; the
    columns ``extras`` (declared extra fields) as the batch's extras."""
    n = df.height
    t = df["TX_DATETIME"].dt.epoch("ms").to_numpy().astype(np.int64)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=df["TRANSACTION_ID"].cast(pl.Utf8).to_list(),
        event_time_ms=t,
        account=df["CUSTOMER_ID"].cast(pl.Utf8).to_list(),
        counterparty=df["TERMINAL_ID"].cast(pl.Utf8).to_list(),
        kind=np.zeros(n, dtype=np.int8),
        amount=df["TX_AMOUNT"].to_numpy().astype(np.float64),
        old_balance_orig=nan,
        new_balance_orig=nan,
        old_balance_dest=nan,
        new_balance_dest=nan,
        label=(  # ground truth (training's target), never a feature
            df["TX_FRAUD"].to_numpy().astype(np.int8)
            if "TX_FRAUD" in df.columns
            else np.full(n, -1, dtype=np.int8)
        ),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
        extras={name: df[name].to_list() for name in extras},
    )


def fdh_labels(df: pl.DataFrame, *, delay_ms: int = 7 * DAY_MS) -> list[LabelMessage]:
    """A label record per handbook fraud, known ``delay_ms`` after the transaction."""
    frauds = df.filter(pl.col("TX_FRAUD") == 1)
    t = frauds["TX_DATETIME"].dt.epoch("ms").to_list()
    return [
        LabelMessage(
            tx_id=str(tx),
            label=1,
            labelled_at_ms=int(when) + delay_ms,
            account=str(customer),
            counterparty=str(terminal),
            tx_time_ms=int(when),
            source="simulator",
            reason="handbook TX_FRAUD, known 7 days later",
        )
        for tx, customer, terminal, when in zip(
            frauds["TRANSACTION_ID"].to_list(),
            frauds["CUSTOMER_ID"].to_list(),
            frauds["TERMINAL_ID"].to_list(),
            t,
            strict=True,
        )
    ]


def fdh_features(
    df: pl.DataFrame, labels: Sequence[LabelMessage], *, chunk: int = 100_000
) -> FdhData:
    """Replay ``df`` (time order) through a fresh :class:`CardFeatureEngine` reading ``labels``.

    The protocols' ground truth is the labels too: a transaction is a fraud if some label says
    so at any time (``TX_FRAUD`` is not read).
    """
    from fraudstream.model._train import label_book

    book = label_book(labels)
    engine = CardFeatureEngine(labels=book)
    parts = [
        engine.update_and_extract(fdh_batch(df.slice(i, chunk))) for i in range(0, df.height, chunk)
    ]
    t = df["TX_DATETIME"].dt.epoch("ms").to_numpy().astype(np.int64)
    ids = df["TRANSACTION_ID"].cast(pl.Utf8).to_list()
    return FdhData(
        customer=df["CUSTOMER_ID"].to_numpy().astype(np.int64),
        day=(t - int(ORIGIN.timestamp() * 1000)) // DAY_MS,
        time_ms=t,
        label=np.fromiter((book.ever_fraud(i) for i in ids), dtype=np.int8, count=len(ids)),
        x=np.concatenate(parts),
        names=CARD_FEATURES,
    )


def _day_of(date: str) -> int:
    return (dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC) - ORIGIN).days


def train_test_split(
    d: FdhData, start_day: int, delta_train: int = 7, delta_delay: int = 7, delta_test: int = 7
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The handbook's ``get_train_test_set``: row indices of train and test.

    Test drops, each day, the cards known compromised: a fraud in train, or a fraud on a day up
    to the test day minus the delay.
    """
    train = np.flatnonzero((d.day >= start_day) & (d.day < start_day + delta_train))
    known = set(d.customer[train][d.label[train] == 1].tolist())
    test_parts = []
    for k in range(delta_test):
        day = start_day + delta_train + delta_delay + k
        delay_day = np.flatnonzero(d.day == start_day + delta_train + k - 1)
        known |= set(d.customer[delay_day][d.label[delay_day] == 1].tolist())
        rows = np.flatnonzero(d.day == day)
        test_parts.append(rows[~np.isin(d.customer[rows], list(known))])
    return train, np.concatenate(test_parts)


def card_precision_at_k(
    score: F64, customer: I64, day: I64, label: npt.NDArray[np.int8], k: int = _TOP_K
) -> float:
    """Card Precision@k per day (cards ranked by max score; cards detected earlier removed)."""
    detected: set[int] = set()
    per_day = []
    for dday in np.unique(day):
        m = (day == dday) & ~np.isin(customer, list(detected))
        df = (
            pl.DataFrame({"c": customer[m], "s": score[m], "y": label[m]})
            .group_by("c")
            .agg(pl.col("s").max(), pl.col("y").max())
            .sort(["s", "c"], descending=[True, False])
            .head(k)
        )
        hits = df.filter(pl.col("y") == 1)["c"].to_list()
        per_day.append(len(hits) / k)
        detected.update(hits)
    return float(np.mean(per_day))


def _metrics(d: FdhData, test: npt.NDArray[np.intp], score: F64) -> dict[str, float]:
    y = d.label[test]
    return {
        "auc_roc": float(roc_auc_score(y, score)),
        "average_precision": float(average_precision_score(y, score)),
        "card_precision_at_100": card_precision_at_k(score, d.customer[test], d.day[test], y),
    }


Fit = Callable[[F32, npt.NDArray[np.int8], F32], F64]


def _logreg(params: dict[str, Any]) -> Fit:
    def fit(x: F32, y: npt.NDArray[np.int8], xt: F32) -> F64:
        sc = StandardScaler().fit(x)
        model = LogisticRegression(random_state=0, **params).fit(sc.transform(x), y)
        return np.asarray(model.predict_proba(sc.transform(xt))[:, 1], dtype=np.float64)

    return fit


def _lgbm(params: dict[str, Any]) -> Fit:
    import lightgbm as lgb

    def fit(x: F32, y: npt.NDArray[np.int8], xt: F32) -> F64:
        model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=2, **params).fit(x, y)
        return np.asarray(model.predict_proba(xt), dtype=np.float64)[:, 1]

    return fit


def _columns(d: FdhData, names: Sequence[str]) -> list[int]:
    return [d.names.index(n) for n in names]


def run_ch3(d: FdhData, model: ModelName = "logreg", rich: bool = False) -> dict[str, float]:
    """Chapter 3 baseline: train 2018-07-25 (7 days), delay 7, test 2018-08-08 (7 days)."""
    cols = _columns(d, CARD_FEATURES if rich else FDH_FEATURES)
    train, test = train_test_split(d, _day_of("2018-07-25"))
    fit = _logreg({}) if model == "logreg" else _lgbm({})
    x = d.x[:, cols]
    return _metrics(d, test, fit(x[train], d.label[train], x[test]))


GRIDS: Final[dict[str, dict[str, list[Any]]]] = {
    "logreg": {"C": [0.1, 1, 10, 100]},
    "lgbm": {
        "n_estimators": [300],
        "learning_rate": [0.03],
        "num_leaves": [15, 31, 63],
        "min_child_samples": [20, 100],
        "subsample": [0.8],
        "subsample_freq": [1],
        "colsample_bytree": [0.8],
    },
}


def _prequential(
    d: FdhData, start_day: int, fit: Fit, cols: list[int], n_folds: int = 4
) -> list[dict[str, float]]:
    """The handbook's ``prequential_split``: fold ``i`` starts ``7 * i`` days earlier."""
    out = []
    x = d.x[:, cols]
    for fold in range(n_folds):
        train, test = train_test_split(d, start_day - 7 * fold)
        out.append(_metrics(d, test, fit(x[train], d.label[train], x[test])))
    return out


def run_ch5(
    d: FdhData,
    model: ModelName = "lgbm",
    rich: bool = True,
    select_on: str = "ap+cp",
    grid: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Chapter 5 model selection: grid on validation folds (train from 2018-07-11 backwards),
    the chosen parameters on test folds (train from 2018-08-15 backwards); mean and std.

    ``select_on`` is a metric key, or ``"ap+cp"`` for average precision + CP@100."""
    cols = _columns(d, CARD_FEATURES if rich else FDH_FEATURES)
    grid = GRIDS[model] if grid is None else grid
    make = _logreg if model == "logreg" else _lgbm
    best: tuple[float, dict[str, Any]] | None = None
    for combo in itertools.product(*grid.values()):
        params = dict(zip(grid, combo, strict=True))
        valid = _prequential(d, _day_of("2018-07-11"), make(params), cols)
        keys = (
            ("average_precision", "card_precision_at_100") if select_on == "ap+cp" else (select_on,)
        )
        score = float(sum(np.mean([v[k] for v in valid]) for k in keys))
        log.info("validation %s %s = %.4f", params, select_on, score)
        if best is None or score > best[0]:
            best = (score, params)
    assert best is not None
    test = _prequential(d, _day_of("2018-08-15"), make(best[1]), cols)
    result: dict[str, Any] = {"params": best[1], "validation_" + select_on: best[0]}
    for key in ("auc_roc", "average_precision", "card_precision_at_100"):
        vals = [t[key] for t in test]
        result[key] = float(np.mean(vals))
        result[key + "_std"] = float(np.std(vals))
    return result
