"""File replay: read a CSV/Parquet file in a supported format, order it by event time, encode it.

Supported without configuration: PaySim's Kaggle CSV (``step,type,amount,nameOrig,...``), our own
PaySim output (the same plus ``eventTimeMs``, ``fraudScenario``), the Fraud Detection Handbook's
card parquet and our card output (``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, ...``). Other column
names are mapped with ``columns`` (target field -> source column, matched case-insensitively), e.g.
``FRAUDSTREAM_REPLAY__COLUMNS__AMOUNT=amt``. Kafka itself is the CLI's business, not this module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema import CardRecord, PaySimRecord, encode_card, encode_paysim
from fraudstream.simulate._card import CARD_ROBOTS
from fraudstream.simulate._write import PAYSIM_COLUMNS

__all__ = ["ReplayFile", "SpeedupPacer", "load_replay"]

Format = Literal["paysim", "card"]
_HOUR_MS: Final = 3_600_000
_PAYSIM_TYPES: Final = {
    "step": pl.Int64,
    "type": pl.Utf8,
    "amount": pl.Float64,
    "nameOrig": pl.Utf8,
    "oldbalanceOrg": pl.Float64,
    "newbalanceOrig": pl.Float64,
    "nameDest": pl.Utf8,
    "oldbalanceDest": pl.Float64,
    "newbalanceDest": pl.Float64,
    "isFraud": pl.Int64,
    "isFlaggedFraud": pl.Int64,
    "eventTimeMs": pl.Int64,
    "fraudScenario": pl.Utf8,
    "txId": pl.Utf8,
}
_CARD_TARGETS: Final = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
_TARGETS: Final = {t.lower(): t for t in (*PAYSIM_COLUMNS, "txId", *_CARD_TARGETS)}
_CARD_SCENARIOS: Final = dict(enumerate(CARD_ROBOTS, start=1))


@dataclass(frozen=True)
class ReplayFile:
    """A file ready to replay: rows in event-time order (file order among equal times)."""

    path: Path
    format: Format
    frame: pl.DataFrame
    event_time_ms: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return self.frame.height

    def messages(self, lo: int, hi: int) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of rows ``lo`` to ``hi``: key = the account, value = the JSON record."""
        rows = self.frame.slice(lo, hi - lo).to_dicts()
        times = self.event_time_ms[lo:hi].tolist()
        if self.format == "paysim":
            return [_paysim_message(r, t) for r, t in zip(rows, times, strict=True)]
        return [_card_message(r, t) for r, t in zip(rows, times, strict=True)]


def _paysim_message(row: dict[str, object], event_ms: int) -> tuple[bytes, bytes]:
    fields = {k: v for k, v in row.items() if k in _PAYSIM_TYPES and v is not None}
    fields["eventTimeMs"] = event_ms
    rec = PaySimRecord(**fields)  # type: ignore[arg-type]
    return rec.nameOrig.encode(), encode_paysim(rec)


def _card_message(row: dict[str, object], event_ms: int) -> tuple[bytes, bytes]:
    label = row.get("TX_FRAUD")
    scenario = row.get("TX_FRAUD_SCENARIO")
    tx_id = row.get("TRANSACTION_ID")
    rec = CardRecord(
        customerId=str(row["CUSTOMER_ID"]),
        terminalId=str(row["TERMINAL_ID"]),
        amount=float(row["TX_AMOUNT"]),  # type: ignore[arg-type]
        eventTimeMs=event_ms,
        txId=None if tx_id is None else str(tx_id),
        isFraud=None if label is None else int(label),  # type: ignore[call-overload]
        fraudScenario=None if not scenario else _CARD_SCENARIOS.get(int(scenario), str(scenario)),  # type: ignore[call-overload]
    )
    return rec.customerId.encode(), encode_card(rec)


def _read(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix in (".csv", ".gz"):
        return pl.read_csv(path, infer_schema_length=10_000)
    raise ConfigError(f"cannot replay {path.name}: expected a .csv or .parquet file")


def _rename(frame: pl.DataFrame, columns: Mapping[str, str]) -> pl.DataFrame:
    """Apply the user's mapping (target -> source), then match known names case-insensitively."""
    renames: dict[str, str] = {}
    for target, source in columns.items():
        canonical = _TARGETS.get(target.lower())
        if canonical is None:
            raise ConfigError(
                f"replay column mapping: unknown target field {target!r}; "
                f"choose from {sorted(_TARGETS.values())}"
            )
        if source not in frame.columns:
            raise SchemaError(f"replay column mapping: {source!r} (for {canonical}) not in file")
        renames[source] = canonical
    frame = frame.rename(renames)
    loose = {c: _TARGETS[c.lower()] for c in frame.columns if c.lower() in _TARGETS}
    return frame.rename({c: t for c, t in loose.items() if c != t and t not in frame.columns})


def _detect(frame: pl.DataFrame) -> Format:
    cols = set(frame.columns)
    if {"type", "amount", "nameOrig", "nameDest"} <= cols and cols & {"step", "eventTimeMs"}:
        return "paysim"
    if {"CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"} <= cols and cols & {
        "TX_DATETIME",
        "TX_TIME_SECONDS",
    }:
        return "card"
    raise SchemaError(
        f"unrecognised columns {sorted(cols)}: expected PaySim's (step, type, amount, nameOrig, "
        "nameDest, ...) or the card format's (TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, "
        "...); map yours with FRAUDSTREAM_REPLAY__COLUMNS__<FIELD>=<your column>"
    )


def _event_time(frame: pl.DataFrame, fmt: Format, origin_ms: int) -> pl.Expr:
    cols = set(frame.columns)
    if fmt == "paysim":
        by_step = pl.lit(origin_ms) + pl.col("step").cast(pl.Int64) * _HOUR_MS
        if "eventTimeMs" in cols:
            return pl.col("eventTimeMs").cast(pl.Int64).fill_null(by_step)
        return by_step
    if "TX_DATETIME" in cols:
        dtype = frame.schema["TX_DATETIME"]
        when = pl.col("TX_DATETIME")
        if dtype == pl.Utf8:
            when = when.str.to_datetime()
        return when.dt.epoch("ms")
    return pl.lit(origin_ms) + pl.col("TX_TIME_SECONDS").cast(pl.Int64) * 1000


def load_replay(
    path: Path, columns: Mapping[str, str] | None = None, *, origin_ms: int = 0
) -> ReplayFile:
    """Read ``path``, map its columns, order it by event time.

    Event time is ``eventTimeMs`` (our output), else ``origin_ms`` + ``step`` hours (PaySim's
    Kaggle CSV), ``TX_DATETIME`` (the handbook's) or ``origin_ms`` + ``TX_TIME_SECONDS``.
    """
    frame = _rename(_read(path), columns or {})
    fmt = _detect(frame)
    if fmt == "paysim":
        frame = frame.with_columns(
            pl.col(c).cast(t, strict=False) for c, t in _PAYSIM_TYPES.items() if c in frame.columns
        )
    frame = frame.with_columns(_event_time(frame, fmt, origin_ms).alias("__event_ms"))
    frame = frame.with_row_index("__row").sort(["__event_ms", "__row"])
    event_ms = frame["__event_ms"].to_numpy().astype(np.int64)
    return ReplayFile(path, fmt, frame.drop("__row", "__event_ms"), event_ms)


class SpeedupPacer:
    """Releases records when their event time, divided by ``speedup``, has passed on the clock.

    The first record goes at once; a record ``d`` ms of event time later goes ``d / speedup`` ms
    of real time later. Waits shorter than 2 ms are skipped (the sleep granularity).
    """

    def __init__(
        self,
        speedup: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speedup > 0:
            raise ConfigError(f"speedup must be > 0, got {speedup}")
        self.speedup = speedup
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, int] | None = None

    def wait_until(self, event_ms: int) -> None:
        """Sleep until the record at ``event_ms`` is due."""
        if self._origin is None:
            self._origin = (self._clock(), event_ms)
            return
        wall0, event0 = self._origin
        due = wall0 + (event_ms - event0) / 1000.0 / self.speedup
        ahead = due - self._clock()
        if ahead > 0.002:
            self._sleep(ahead)
