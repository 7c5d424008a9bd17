"""File replay: a transaction file's rows, in event-time order, as the JSON records Kafka carries.

The file is read by :func:`fraudstream.schema._files.read_transactions`, the reader ``train``
uses too: PaySim's Kaggle CSV, our PaySim output, the Fraud Detection Handbook's card parquet and
our card output; other column names mapped with ``columns`` (target field -> the file's column,
``FRAUDSTREAM_REPLAY__COLUMNS__AMOUNT=amt``); rows with a missing or invalid required value
skipped and counted, never a crash mid-replay. Every record carries ``eventTimeMs`` (the
detector's event time): the file's own, or ``start_ms`` + PaySim's ``step`` hours (a step's rows
spread over its hour) / + ``TX_TIME_SECONDS``; :attr:`ReplayFile.offset_ms` is that shift, which
the file's labels get too. Kafka itself is the CLI's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec.structs
import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ConfigError
from fraudstream.schema import CardRecord, LabelMessage, PaySimRecord, encode_card, encode_paysim
from fraudstream.schema._files import FileFormat, Start, TransactionFile, read_transactions
from fraudstream.schema._label_files import TxFacts, complete_labels
from fraudstream.simulate._card import CARD_ROBOTS

__all__ = ["ReplayFile", "SpeedupPacer", "load_replay"]

_CARD_SCENARIOS: Final = dict(enumerate(CARD_ROBOTS, start=1))
#: Per format: the id replay sends, the account (the key) and the counterparty.
_FACT_COLUMNS: Final[dict[FileFormat, tuple[str, str, str]]] = {
    "paysim": ("txId", "nameOrig", "nameDest"),
    "card": ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID"),
}


class ReplayFile:
    """A file ready to replay: rows in event-time order (file order among equal times).

    ``offset_ms`` is what was added to the file's relative times (``step``, ``TX_TIME_SECONDS``):
    the ``start_ms`` they were read with; 0 for a file with timestamps of its own, which are kept.
    """

    def __init__(self, file: TransactionFile, offset_ms: int = 0) -> None:
        self.file = file
        self.offset_ms = offset_ms

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def format(self) -> FileFormat:
        return self.file.format

    @property
    def event_time_ms(self) -> npt.NDArray[np.int64]:
        return self.file.event_time_ms

    def __len__(self) -> int:
        return len(self.file)

    def messages(self, lo: int, hi: int) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of rows ``lo`` to ``hi``: key = the account, value = the JSON record."""
        rows = self.file.frame.slice(lo, hi - lo).to_dicts()
        times = self.event_time_ms[lo:hi].tolist()
        if self.format == "paysim":
            return [_paysim_message(r, t) for r, t in zip(rows, times, strict=True)]
        extras = tuple(self.file.extras)  # declared extra fields travel as message fields
        return [_card_message(r, t, extras) for r, t in zip(rows, times, strict=True)]

    def lookup(self, tx_ids: Collection[str]) -> dict[str, TxFacts]:
        """``(account, counterparty, event_time_ms)`` of the rows with an id in ``tx_ids``: the
        id replay sends (``txId``, ``TRANSACTION_ID``); the first row of an id wins; a file
        without ids finds none."""
        id_column, account, counterparty = _FACT_COLUMNS[self.format]
        frame = self.file.frame
        if id_column not in frame.columns or not tx_ids:
            return {}
        facts = pl.DataFrame(
            {
                "id": frame[id_column].cast(pl.String),
                "account": frame[account].cast(pl.String),
                "counterparty": frame[counterparty].cast(pl.String),
                "time": self.event_time_ms,
            }
        )
        found = facts.filter(pl.col("id").is_in(list(tx_ids))).unique(
            "id", keep="first", maintain_order=True
        )
        return {i: (a, c, t) for i, a, c, t in found.iter_rows()}

    def shift_labels(self, labels: Sequence[LabelMessage]) -> list[LabelMessage]:
        """This file's ``labels`` in replay time: ``labelled_at_ms`` and a given ``tx_time_ms``
        plus :attr:`offset_ms` (a shifted label gets the ``label_id`` of its new time); a missing
        account, counterparty or transaction time taken from the label's row in the file."""
        shift = self.offset_ms
        moved = (
            [
                msgspec.structs.replace(
                    m,
                    labelled_at_ms=m.labelled_at_ms + shift,
                    tx_time_ms=None if m.tx_time_ms is None else m.tx_time_ms + shift,
                    label_id=None,
                )
                for m in labels
            ]
            if shift
            else list(labels)
        )
        done, _ = complete_labels(moved, self.lookup({m.tx_id for m in moved}))
        return done


def _paysim_message(row: dict[str, Any], event_ms: int) -> tuple[bytes, bytes]:
    fields = {k: v for k, v in row.items() if v is not None}
    fields["eventTimeMs"] = event_ms
    rec = PaySimRecord(**fields)
    return rec.nameOrig.encode(), encode_paysim(rec)


def _card_message(
    row: dict[str, Any], event_ms: int, extras: tuple[str, ...] = ()
) -> tuple[bytes, bytes]:
    label = row.get("TX_FRAUD")
    tx_id = row.get("TRANSACTION_ID")
    rec = CardRecord(
        customerId=str(row["CUSTOMER_ID"]),
        terminalId=str(row["TERMINAL_ID"]),
        amount=float(row["TX_AMOUNT"]),
        eventTimeMs=event_ms,
        txId=None if tx_id is None else str(tx_id),
        isFraud=None if label is None else int(label),
        fraudScenario=_card_scenario(row.get("TX_FRAUD_SCENARIO")),
    )
    return rec.customerId.encode(), encode_card(rec, {k: row[k] for k in extras})


def _card_scenario(value: object) -> str | None:
    """The handbook's scenario number (0 = genuine) as our robot's name; a name as it is."""
    if value is None or value in (0, "0"):
        return None
    text = str(value)
    return _CARD_SCENARIOS.get(int(text), text) if text.isdigit() else text


def load_replay(
    path: Path, columns: Mapping[str, str] | None = None, *, start_ms: Start = 0
) -> ReplayFile:
    """Read ``path`` (any supported format), map its columns, order it by event time.

    ``start_ms`` is the event time of PaySim's step 0 / the card format's second 0 when the file
    has no timestamps of its own, or a function of the file's relative span that gives it (e.g.
    :func:`fraudstream.schema._files.start_before`).
    """
    resolved: list[int] = []

    def start(span_ms: int) -> int:  # called only when some times are relative
        resolved.append(start_ms if isinstance(start_ms, int) else start_ms(span_ms))
        return resolved[-1]

    file = read_transactions(path, columns=columns, start_ms=start)
    return ReplayFile(file, resolved[-1] if resolved else 0)


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
