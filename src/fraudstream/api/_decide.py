"""One synchronous decision within the time budget, recorded exactly once.

A request's transaction id is looked up, in order: among the records this API produced and
awaits (a concurrent retry waits for the same decision), then in the store (a retry of a decided
transaction gets the stored decision and is not produced again); only a new id is produced. No
decision within the budget, or a record the broker does not take, gives the configured fallback
decision marked ``fallback``; the record stays in flight and is decided and stored all the same.

A retry must repeat the account, counterparty and amount, and the extra fields of a card
bundle: those of a record this process produced are kept (the latest :data:`_SENT`); a retry of
one decided elsewhere, or before a restart, is compared on the three facts only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Final, Literal

from fraudstream.api._channel import Answer, BrokerUnavailable, DecisionChannel, Pending
from fraudstream.api._metrics import ApiMetrics
from fraudstream.api._records import ApiRecord
from fraudstream.errors import FraudstreamError

__all__ = ["Conflict", "Decider"]

log = logging.getLogger(__name__)

Lookup = Callable[[str], dict[str, Any] | None]
#: Log a store that cannot be read at most once per this many failures.
_LOG_EVERY: Final = 1_000
#: The extra fields of this many records produced are kept for their retries.
_SENT: Final = 100_000


class Conflict(FraudstreamError):
    """The transaction id was already used for a transaction with other facts."""


class Decider:
    """Answers decisions with ``channel`` (produce, await) and ``lookup`` (the store's decision
    of an id, run on ``executor``; ``None``: on the event loop, for a local SQLite file whose
    reads never wait for the writer), within ``budget_ms``; else ``fallback``."""

    def __init__(
        self,
        channel: DecisionChannel,
        lookup: Lookup,
        *,
        executor: Executor | None,
        metrics: ApiMetrics,
        budget_ms: int = 100,
        fallback: Literal["allow", "review", "block"] = "review",
    ) -> None:
        self.channel = channel
        self.lookup = lookup
        self.executor = executor
        self.metrics = metrics
        self.budget_s = budget_ms / 1000
        self.fallback = fallback
        self._store_failures = 0
        self._counters: dict[tuple[str, str], Any] = {}  # labelled children, looked up once
        self._sent: OrderedDict[str, tuple[object, ...]] = OrderedDict()  # tx_id -> extras
        metrics.pending.set_function(lambda: len(channel.pending))

    async def decide(self, record: ApiRecord) -> dict[str, Any]:
        """The decision on ``record`` as the response's JSON object; ``Conflict`` if its id was
        used for another transaction."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget_s
        tx_id = record.tx_id
        pending = self.channel.pending.get(tx_id)
        if pending is None:
            known = self._known(record)
            if known is not None:
                return known
            stored = await self._stored(tx_id, deadline)
            if stored is not None:
                facts = (stored["account"], stored["counterparty"], stored["amount"])
                _check_same(record, facts, self._sent.get(tx_id))
                return self._count(_from_store(stored), "store")
            known = self._known(record)  # answered while we looked
            if known is not None:
                return known
            pending = self.channel.pending.get(tx_id)  # sent while we looked
        if pending is None:
            try:
                pending = self.channel.send(record)
            except BrokerUnavailable as exc:
                log.warning("fallback for %s: %s", tx_id, exc)
                return self._fallen_back(tx_id, "broker")
            if record.extras:
                self._sent[tx_id] = record.extras
                if len(self._sent) > _SENT:
                    self._sent.popitem(last=False)
        else:
            _check_same(record, pending.facts, pending.extras)
        return await self._answer(tx_id, pending, deadline)

    def _known(self, record: ApiRecord) -> dict[str, Any] | None:
        """The answer to ``record``'s id among the latest decisions read, if there."""
        answer = self.channel.recent.get(record.tx_id)
        if answer is None:
            return None
        facts = (answer.account, answer.counterparty, answer.amount)
        _check_same(record, facts, self._sent.get(record.tx_id))
        return self._count(_from_alert(answer), "store")

    async def _answer(self, tx_id: str, pending: Pending, deadline: float) -> dict[str, Any]:
        left = deadline - asyncio.get_running_loop().time()
        try:
            alert = await asyncio.wait_for(asyncio.shield(pending.future), max(left, 0.0))
        except TimeoutError:
            return self._fallen_back(tx_id, "budget")
        except BrokerUnavailable:
            return self._fallen_back(tx_id, "broker")
        return self._count(_from_alert(alert), "detector")

    async def _stored(self, tx_id: str, deadline: float) -> dict[str, Any] | None:
        """The stored decision of ``tx_id``; ``None`` if none, or if the store does not answer
        within the budget (the record is then produced: the detector's store keeps one row)."""
        loop = asyncio.get_running_loop()
        try:
            if self.executor is None:  # a thread hop costs more than a SQLite primary-key read
                return self.lookup(tx_id)
            return await asyncio.wait_for(
                loop.run_in_executor(self.executor, self.lookup, tx_id),
                max(deadline - loop.time(), 0.0),
            )
        except (TimeoutError, FraudstreamError) as exc:
            self._store_failures += 1
            if self._store_failures % _LOG_EVERY == 1:
                log.warning(
                    "store lookup of a decision failed (%d so far): %s",
                    self._store_failures,
                    exc or "no answer within the budget",
                )
            return None

    def _count(self, out: dict[str, Any], source: str) -> dict[str, Any]:
        key = (out["decision"], source)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.decisions.labels(*key)
        counter.inc()
        return out

    def _fallen_back(self, tx_id: str, reason: Literal["budget", "broker"]) -> dict[str, Any]:
        self.metrics.fallbacks.labels(reason).inc()
        out: dict[str, Any] = {
            "tx_id": tx_id,
            "decision": self.fallback,
            "score": None,
            "reasons": [],
            "rules_fired": [],
            "rule_set_version": None,
            "model_version": None,
            "fallback": True,
            "fallback_reason": reason,
        }
        return self._count(out, "fallback")


def _check_same(
    record: ApiRecord, facts: tuple[Any, Any, Any], extras: tuple[object, ...] | None = None
) -> None:
    """``Conflict`` unless ``record`` repeats ``facts`` and ``extras`` (``None``: not known)."""
    account, counterparty, amount = facts
    if (str(account), str(counterparty), float(amount)) != record.facts or (
        extras is not None and extras != record.extras
    ):
        raise Conflict(
            f"txId {record.tx_id!r} was already used for another transaction (account, "
            "counterparty, amount or extra fields differ); send a new id for a new transaction"
        )


def _from_alert(alert: Answer) -> dict[str, Any]:
    return {
        "tx_id": alert.tx_id,
        "decision": alert.decision,
        "score": alert.score,
        "reasons": [
            {"feature": r.feature, "value": r.value, "contribution": r.contribution}
            for r in alert.reasons
        ],
        "rules_fired": alert.rules_fired,
        "rule_set_version": alert.rule_set_version,
        "model_version": alert.model_version,
        "fallback": False,
        "fallback_reason": None,
    }


def _from_store(stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "tx_id": stored["tx_id"],
        "decision": stored["decision"],
        "score": stored["score"],
        "reasons": stored["reasons"],
        "rules_fired": stored["rules_fired"],
        "rule_set_version": stored["rule_set_version"],
        "model_version": stored["model_version"],
        "fallback": False,
        "fallback_reason": None,
    }
