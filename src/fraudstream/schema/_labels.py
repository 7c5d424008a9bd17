"""The ``fraud-labels`` topic's message: a verdict on one transaction, known at some time.

JSON, keyed by the account (so a label lands in the partition of the account's transactions), or
by the transaction id when the producer does not know the account::

    {"tx_id": "t-1", "account": "C123", "label": 1, "labelled_at_ms": 1700000000000,
     "alert_id": "t-1", "source": "analyst", "analyst": "ana", "reason": null,
     "label_id": "5b0c…"}

- ``label``: the verdict, 1 = fraud, 0 = genuine.
- ``source``: ``analyst`` (a review of an alert: the dashboard), ``chargeback`` (the card network
  took the money back), ``dispute`` (the customer says it was not them), ``rule`` (an automatic
  verdict, e.g. a confirmed block) or ``simulator`` (labels made from a simulator's or a data
  set's ground truth, e.g. "label time = transaction time + 7 days").
- ``labelled_at_ms``: when the verdict became known (ms since the epoch). A feature computed at
  event time *t* may use exactly the labels with ``labelled_at_ms <= t``.
- ``account``, ``counterparty``, ``tx_time_ms``: the labelled transaction's sender, receiver
  (merchant, terminal) and event time. Label features are kept per entity, so a detector needs
  them; a label without them is completed from the store (every stored transaction), else held
  as *unseen* (rule 4).
- ``alert_id``, ``analyst``, ``reason``: optional (``reason``: free text for people,
  never a model input).
- ``label_id``: a deterministic id, :func:`label_id_of` = the first 32 hex digits of
  BLAKE2b-128 over ``tx_id``, ``label``, ``source`` and ``labelled_at_ms`` joined by ``\\x1f``.
  The same verdict imported twice has the same id, so a consumer drops re-imported rows by id.
  A message without one (the dashboard's before this field) gets it computed while decoding; a
  message whose ``label_id`` does not match its content is invalid.

Bounds (like a transaction's, ``schema._bounds``): ids and names are 1 to ``MAX_ID_CHARS``
printable characters, ``reason`` at most :data:`MAX_REASON_CHARS`, ``0 <= labelled_at_ms <
MAX_EVENT_TIME_MS`` (before 2100) and at most ``MAX_FUTURE_SKEW_MS`` ahead of the record's
broker timestamp when one is given; ``0 <= tx_time_ms < MAX_EVENT_TIME_MS``.
:func:`decode_labels` decodes a batch of raw values and returns the invalid ones with a reason,
for the dead-letter topic.

Rules the detector applies (``stream._labels``, ``features._labelbook``):

1. **Malformed** (not JSON, a field out of bounds, a wrong ``label_id``): to the dead-letter topic
   with the reason from :func:`decode_labels`; it never stops the consumer.
2. **Duplicate**: a label with the ``label_id`` of one already applied is ignored (a re-import, a
   republished review). A label with the same ``tx_id``, verdict and source but another time is a
   duplicate too: the earliest ``labelled_at_ms`` counts (the verdict was known from then), the
   later one is ignored.
3. **Contradicting** (another verdict on the same ``tx_id``, e.g. an analyst says genuine after a
   chargeback): the latest ``labelled_at_ms`` wins from its own time on (a feature at an earlier
   event time still sees the earlier verdict); at equal times the source of higher precedence
   wins, :data:`SOURCE_PRECEDENCE`: chargeback > dispute > analyst > rule > simulator, then
   fraud over genuine, so the outcome never depends on arrival order.
4. **Unseen transaction** (its ``tx_id`` not yet seen, e.g. the label topic ran ahead of the
   transactions): kept until the transaction arrives, for at most :data:`PENDING_LABEL_TTL_MS`
   of event time (the consumer's latest transaction time past ``labelled_at_ms``); then it is
   dropped and counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Final, Literal

import msgspec
import msgspec.structs
import numpy as np

from fraudstream.errors import SchemaError
from fraudstream.schema._bounds import MAX_EVENT_TIME_MS, MAX_ID_CHARS, check_batch
from fraudstream.schema._paysim import Invalid, decode_records

__all__ = [
    "LABEL_SOURCES",
    "MAX_REASON_CHARS",
    "PENDING_LABEL_TTL_MS",
    "SOURCE_PRECEDENCE",
    "VERDICTS",
    "LabelMessage",
    "LabelSource",
    "decode_label",
    "decode_labels",
    "encode_label",
    "label_from_status",
    "label_id_of",
]

LabelSource = Literal["analyst", "chargeback", "dispute", "rule", "simulator"]
#: Where a label comes from.
LABEL_SOURCES: Final[tuple[LabelSource, ...]] = (
    "analyst",
    "chargeback",
    "dispute",
    "rule",
    "simulator",
)
#: Tie-break between contradicting labels known at the same millisecond: higher wins.
SOURCE_PRECEDENCE: Final[dict[str, int]] = {
    "chargeback": 4,
    "dispute": 3,
    "analyst": 2,
    "rule": 1,
    "simulator": 0,
}
#: How long (event time) a label for a transaction not seen yet waits for it: 7 days.
PENDING_LABEL_TTL_MS: Final = 7 * 86_400_000
#: Longest ``reason``.
MAX_REASON_CHARS: Final = 500
#: Alert statuses that are verdicts (``fraud_alerts.status`` besides ``open``).
VERDICTS: Final = ("confirmed_fraud", "false_positive")

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON_CHARS)]
_TimeMs = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_TxTimeMs = Annotated[int, msgspec.Meta(ge=0, lt=MAX_EVENT_TIME_MS)]  # a transaction's time
_LabelId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
_TEXT: Final = ("tx_id", "account", "counterparty", "alert_id", "analyst", "reason")
_SEP: Final = "\x1f"


def label_id_of(tx_id: str, label: int, source: str, labelled_at_ms: int) -> str:
    """The deterministic id of a verdict (32 hex digits; see the module's notes)."""
    text = _SEP.join((tx_id, str(label), source, str(labelled_at_ms)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class LabelMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A verdict on one transaction; ``alert_id`` is ``None`` for labels without an alert.

    ``label_id`` is computed when not given; a given one must match (``ValueError``, a
    ``msgspec.ValidationError`` while decoding).
    """

    tx_id: _Id
    label: Literal[0, 1]
    labelled_at_ms: _TimeMs
    account: _Id | None = None
    counterparty: _Id | None = None
    tx_time_ms: _TxTimeMs | None = None
    alert_id: _Id | None = None
    source: LabelSource = "analyst"
    analyst: _Id | None = None
    reason: _Reason | None = None
    label_id: _LabelId | None = None

    def __post_init__(self) -> None:
        expected = label_id_of(self.tx_id, self.label, self.source, self.labelled_at_ms)
        if self.label_id is None:
            msgspec.structs.force_setattr(self, "label_id", expected)
        elif self.label_id != expected:
            raise ValueError(
                f"label_id {self.label_id} does not match the label's content (expected "
                f"{expected} from tx_id, label, source, labelled_at_ms); leave it out to have it "
                "computed"
            )


_decoder = msgspec.json.Decoder(LabelMessage)
_encoder = msgspec.json.Encoder()


def encode_label(message: LabelMessage) -> bytes:
    """The message's JSON bytes."""
    return _encoder.encode(message)


def decode_label(value: bytes) -> LabelMessage:
    """Parse one ``fraud-labels`` value; ``SchemaError`` names the field at fault."""
    labels, _, invalid = decode_labels([value])
    if invalid:
        raise SchemaError(invalid[0].reason)
    return labels[0]


def decode_labels(
    values: Sequence[bytes | None], broker_ts_ms: Sequence[int] | None = None
) -> tuple[list[LabelMessage], list[int], list[Invalid]]:
    """Decode and validate raw ``fraud-labels`` values, like :func:`decode_paysim`.

    Returns the valid labels, their positions in ``values`` and the invalid ones with a reason
    (for the dead-letter topic); never raises for bad input. ``broker_ts_ms`` (the records' Kafka
    timestamps) adds the check that ``labelled_at_ms`` is at most a day ahead of it.
    """
    labels, positions, invalid = decode_records(_decoder, values, "label")
    if not labels:
        return labels, positions, _as_label_errors(invalid)
    ts = None
    if broker_ts_ms is not None:
        ts = np.asarray([broker_ts_ms[i] for i in positions], dtype=np.int64)
    raw = [values[i] for i in positions]
    bad = check_batch(labels, raw, text_fields=_TEXT, time_field="labelled_at_ms", broker_ts_ms=ts)
    invalid = _as_label_errors(invalid)
    if not bad:
        return labels, positions, invalid
    invalid += [Invalid(positions[j], f"invalid label: {why}") for j, why in bad.items()]
    invalid.sort(key=lambda v: v.index)
    kept = [j for j in range(len(labels)) if j not in bad]
    return [labels[j] for j in kept], [positions[j] for j in kept], invalid


def _as_label_errors(invalid: list[Invalid]) -> list[Invalid]:
    """``decode_records`` words its reasons for transactions; these are labels."""
    return [
        Invalid(
            v.index,
            v.reason.replace("invalid label transaction", "invalid label").replace(
                "not valid JSON", "label message is not JSON"
            ),
        )
        for v in invalid
    ]


def label_from_status(status: str) -> Literal[0, 1]:
    """The label of an alert status: ``confirmed_fraud`` → 1, ``false_positive`` → 0."""
    if status == "confirmed_fraud":
        return 1
    if status == "false_positive":
        return 0
    raise SchemaError(f"alert status {status!r} is not a verdict; use one of {VERDICTS}")
