"""Counters of a detector run: volumes, decisions and live precision/recall against labels."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fraudstream.schema import DECISIONS

__all__ = ["DetectorStats"]


@dataclass
class DetectorStats:
    """What a detector has done since it started (labels are the robots' ground truth)."""

    consumed: int = 0
    valid: int = 0
    invalid: int = 0
    batches: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    labelled: int = 0
    frauds: int = 0
    true_alerts: int = 0
    alerts_on_labelled: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def count(self, decision: npt.NDArray[np.int8], label: npt.NDArray[np.int8]) -> None:
        """Add one scored batch."""
        counts = np.bincount(decision, minlength=len(DECISIONS))
        for name, n in zip(DECISIONS, counts.tolist(), strict=True):
            self.decisions[name] += n
        known = label >= 0
        alert = decision > 0
        self.labelled += int(known.sum())
        self.frauds += int((label == 1).sum())
        self.true_alerts += int((alert & (label == 1)).sum())
        self.alerts_on_labelled += int((alert & known).sum())

    @property
    def alerts(self) -> int:
        return self.decisions["review"] + self.decisions["block"]

    @property
    def precision(self) -> float | None:
        """Share of alerts (review + block) that are frauds; None before any alert."""
        return self.true_alerts / self.alerts_on_labelled if self.alerts_on_labelled else None

    @property
    def recall(self) -> float | None:
        """Share of frauds that raised an alert; None before any fraud."""
        return self.true_alerts / self.frauds if self.frauds else None

    def rate(self) -> float:
        """Mean valid transactions per second since the start."""
        elapsed = time.monotonic() - self.started_at
        return self.valid / elapsed if elapsed > 0 else 0.0
