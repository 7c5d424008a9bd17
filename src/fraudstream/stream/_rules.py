"""The fraud team's rules and lists in force in a running detector (docs/rules.md).

Between batches, at most once per ``poll_every_s``, :meth:`LiveRules.poll` reads the store's change
token (one small query) and reloads the rule set or the lists when it moved, or when a list entry
expires. A rule the detector cannot load (it names a feature the bundle lacks, or was written to
the store without validation) or a store outage keeps the set in force, with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from fraudstream.errors import StoreError
from fraudstream.model import Bundle
from fraudstream.rules import Decided, RuleError, RuleSet, Schema, batch_frame
from fraudstream.schema import ScoredBatch
from fraudstream.sinks import ChangeToken, ListsSnapshot, PostgresStore, RuleStore, SQLiteStore
from fraudstream.sinks import Store as OutputStore

__all__ = ["LiveRules", "rule_store_for"]

log = logging.getLogger(__name__)

_NO_LISTS = ListsSnapshot({}, 0, 0, None)


def rule_store_for(store: OutputStore) -> RuleStore | None:
    """A (not yet opened) :class:`RuleStore` on the same database as the detector's ``store``;
    ``None`` for a store without a file (SQLite ``:memory:``) or of another kind."""
    if isinstance(store, SQLiteStore) and str(store.path) != ":memory:":
        return RuleStore(f"sqlite:///{Path(store.path)}")
    if isinstance(store, PostgresStore):
        return RuleStore(store.url, schema=store.schema)
    return None


class LiveRules:
    """The rule set and lists in force for ``bundle``'s mode, read from ``store``.

    Use it from one thread (the detector's consuming thread): :meth:`start`, then :meth:`poll`
    and :meth:`decide` per batch, :meth:`close`.
    """

    def __init__(
        self,
        store: RuleStore,
        bundle: Bundle,
        *,
        poll_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.mode = bundle.mode
        self.poll_every_s = poll_every_s
        self.clock = clock
        self._features = bundle.feature_names
        self.schema = Schema.for_mode(bundle.mode, bundle.feature_names)
        self.rules = RuleSet([], self.schema, version=0)
        self.lists = _NO_LISTS
        self._token: ChangeToken | None = None  # last token acted on
        self._refused = 0  # a rules version that failed to load (not retried until it moves)
        self._polled_at = -float("inf")
        self._down = False
        self._open = False
        self.reloads = 0  # rule set versions loaded (for tests and stats)

    @property
    def version(self) -> int:
        """The version of the rule set in force (0: none)."""
        return self.rules.version

    @property
    def acting(self) -> bool:
        """Whether any live or shadow rule is evaluated."""
        return bool(self.rules.live or self.rules.shadow)

    def start(self) -> LiveRules:
        """Connect and load what is in force (a store outage: no rules until it is back, the
        connection is retried at every poll)."""
        self.poll(force=True)
        return self

    def close(self) -> None:
        """Release the store connection."""
        self._open = False
        self.store.close()

    def poll(self, bundle: Bundle | None = None, *, force: bool = False) -> None:
        """Reload rules and lists if they changed (checked at most once per ``poll_every_s``);
        ``bundle``: the model in force, whose features the rules are validated against."""
        if bundle is not None and bundle.feature_names != self._features:
            self._features = bundle.feature_names
            self.schema = Schema.for_mode(self.mode, bundle.feature_names)
            self._token, self._refused = None, 0  # revalidate against the new features
        now = self.clock()
        if not force and now - self._polled_at < self.poll_every_s:
            return
        self._polled_at = now
        try:
            if not self._open:
                self.store.open()
                self._open = True
            self._refresh()
        except StoreError as exc:
            self._outage(exc)
            return
        if self._down:
            self._down = False
            log.info("rules: the store is back; rule set version %d in force", self.version)

    def _refresh(self) -> None:
        token = self.store.token(self.mode)
        old = self._token
        if old is None or token.rules_version != old.rules_version:
            self._load(token.rules_version)
        now_ms = time.time_ns() // 1_000_000
        expiry = self.lists.next_expiry_ms
        if (
            old is None
            or token.lists_seq != old.lists_seq
            or (expiry is not None and now_ms >= expiry)
        ):
            self.lists = self.store.lists_snapshot(now_ms)
        self._token = token

    def _load(self, version: int) -> None:
        if version == self._refused:
            return
        try:
            loaded, rules = self.store.load(self.mode, self.schema)
        except RuleError as exc:
            self._refused = version
            log.warning(
                "rules: version %d of the %s rule set is refused, version %d stays in force: %s",
                version,
                self.mode,
                self.version,
                exc,
            )
            return
        self._refused = 0
        if loaded != self.version or self._token is None:
            log.info(
                "rules: %s rule set version %d in force (%d live, %d shadow)",
                self.mode,
                loaded,
                len(rules.live),
                len(rules.shadow),
            )
        self.rules = rules
        self.reloads += 1

    def _outage(self, exc: StoreError) -> None:
        if not self._down:
            log.warning(
                "rules: cannot read the rule store (%s); version %d stays in force, retrying",
                exc,
                self.version,
            )
        self._down = True

    def decide(self, scored: ScoredBatch) -> Decided | None:
        """The decisions of ``scored`` (the model's in ``scored.decision``) after the rules in
        force, with the rules fired per row; ``None`` when no rule is evaluated."""
        rules = self.rules
        if not (rules.live or rules.shadow):
            return None
        frame = batch_frame(scored, rules.columns)  # only the columns the rules read
        return rules.decide(frame, scored.decision, self.lists.lists, normalised=True)
