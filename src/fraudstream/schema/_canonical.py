"""The canonical transaction batch: columnar, so the hot path can vectorise over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["DECISIONS", "KINDS", "ScoredBatch", "ShadowScores", "TxBatch", "WindowStats"]

#: Transaction kinds, in code order (``TxBatch.kind`` holds indices into this tuple).
KINDS: Final = ("PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT")
#: Decisions, in code order (``ScoredBatch.decision`` holds indices into this tuple).
DECISIONS: Final = ("allow", "review", "block")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@dataclass(slots=True)
class TxBatch:
    """A batch of canonical transactions, one array (or list) per field, all of equal length.

    Absent balances are ``NaN``; an unknown label is ``-1``. ``label`` is ground truth from the
    simulator's robots (or a chargeback feed): it is for evaluation, never a model input.
    ``extras``: the declared extra fields read, by name, each value as the file or the message
    holds it (``None`` when absent); the features turn them into inputs.
    """

    tx_id: list[str]
    event_time_ms: I64
    account: list[str]
    counterparty: list[str]
    kind: I8
    amount: F64
    old_balance_orig: F64
    new_balance_orig: F64
    old_balance_dest: F64
    new_balance_dest: F64
    label: I8
    step: I64
    flagged: I8
    scenario: list[str | None] = field(default_factory=list)
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tx_id)

    def take(self, index: npt.NDArray[np.intp]) -> TxBatch:
        """The rows at ``index``, in that order."""
        idx = index.tolist()
        scen = [self.scenario[i] for i in idx] if self.scenario else []
        return TxBatch(
            tx_id=[self.tx_id[i] for i in idx],
            event_time_ms=self.event_time_ms[index],
            account=[self.account[i] for i in idx],
            counterparty=[self.counterparty[i] for i in idx],
            kind=self.kind[index],
            amount=self.amount[index],
            old_balance_orig=self.old_balance_orig[index],
            new_balance_orig=self.new_balance_orig[index],
            old_balance_dest=self.old_balance_dest[index],
            new_balance_dest=self.new_balance_dest[index],
            label=self.label[index],
            step=self.step[index],
            flagged=self.flagged[index],
            scenario=scen,
            extras={k: [v[i] for i in idx] for k, v in self.extras.items()},
        )

    @classmethod
    def concat(cls, batches: list[TxBatch]) -> TxBatch:
        """One batch holding ``batches`` end to end."""

        def lists(name: str) -> list[str]:
            return [v for b in batches for v in getattr(b, name)]

        def arrays(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])

        return cls(
            tx_id=lists("tx_id"),
            event_time_ms=arrays("event_time_ms"),
            account=lists("account"),
            counterparty=lists("counterparty"),
            kind=arrays("kind"),
            amount=arrays("amount"),
            old_balance_orig=arrays("old_balance_orig"),
            new_balance_orig=arrays("new_balance_orig"),
            old_balance_dest=arrays("old_balance_dest"),
            new_balance_dest=arrays("new_balance_dest"),
            label=arrays("label"),
            step=arrays("step"),
            flagged=arrays("flagged"),
            scenario=[s for b in batches for s in (b.scenario or [None] * len(b))],
            extras={
                k: [v for b in batches for v in b.extras.get(k, [None] * len(b))]
                for k in dict.fromkeys(k for b in batches for k in b.extras)
            },
        )


@dataclass(frozen=True, slots=True)
class ShadowScores:
    """A challenger model's scores and decisions for a batch, stored beside the champion's."""

    model_version: str
    score: F64
    decision: I8


@dataclass(slots=True)
class ScoredBatch:
    """A scored batch: the transactions, their features, scores, decisions and reasons.

    ``reasons[i]`` is empty for *allow* and holds the top contributing features as
    ``(feature_name, feature_value, contribution)`` for *review* and *block*.

    ``decision`` is final: the model's thresholds, then the fraud team's rules (see
    docs/rules.md). ``rules_fired[i]`` / ``rules_shadow[i]`` are the ids of the live / shadow
    rules that fired on row ``i`` (``None``: no rule was evaluated), from version
    ``rule_set_version`` of the rule set (0: none).
    """

    tx: TxBatch
    feature_names: tuple[str, ...]
    features: npt.NDArray[np.float32]
    score: F64
    decision: I8
    reasons: list[list[tuple[str, float, float]]]
    model_version: str
    partition: npt.NDArray[np.int32]
    offset: I64
    processed_at_ms: int
    shadow: ShadowScores | None = None
    rule_set_version: int = 0
    rules_fired: list[tuple[str, ...]] | None = None
    rules_shadow: list[tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return len(self.tx)

    def take(self, index: npt.NDArray[np.intp]) -> ScoredBatch:
        """The rows at ``index``, in that order."""
        shadow = self.shadow
        if shadow is not None:
            shadow = ShadowScores(shadow.model_version, shadow.score[index], shadow.decision[index])
        rows = index.tolist()
        fired, shadow_fired = self.rules_fired, self.rules_shadow
        return ScoredBatch(
            tx=self.tx.take(index),
            feature_names=self.feature_names,
            features=self.features[index],
            score=self.score[index],
            decision=self.decision[index],
            reasons=[self.reasons[i] for i in rows],
            model_version=self.model_version,
            partition=self.partition[index],
            offset=self.offset[index],
            processed_at_ms=self.processed_at_ms,
            shadow=shadow,
            rule_set_version=self.rule_set_version,
            rules_fired=None if fired is None else [fired[i] for i in rows],
            rules_shadow=None if shadow_fired is None else [shadow_fired[i] for i in rows],
        )

    def alert_index(self) -> npt.NDArray[np.intp]:
        """Row indices whose decision is review or block."""
        return np.flatnonzero(self.decision > 0)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Statistics of one sliding window (e.g. the last 30 s, refreshed every second).

    ``frauds`` and ``fraud_amount`` count the transactions labelled fraud (the robots' labels);
    ``alerts`` counts review + block decisions.
    """

    window_end_ms: int
    window_ms: int
    transactions: int
    frauds: int
    alerts: int
    amount: float
    fraud_amount: float

    @property
    def fraud_amount_share(self) -> float:
        """The frauds' share of the total amount (0 when the window is empty)."""
        return self.fraud_amount / self.amount if self.amount > 0 else 0.0

    @property
    def tx_per_s(self) -> float:
        """Mean throughput over the window."""
        return self.transactions * 1000.0 / self.window_ms
