"""Model hot reload: a newer bundle under the models directory replaces the running one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from fraudstream.errors import FraudstreamError
from fraudstream.model import Bundle, latest_bundle

__all__ = ["ModelWatcher"]

log = logging.getLogger(__name__)


class ModelWatcher:
    """Looks for a newer bundle under ``models_dir`` at most every ``check_every_s`` seconds.

    The detector asks between batches, so a swap never splits a batch. A bundle that cannot be
    loaded, or computes other features than the running engine, is logged once and skipped.
    """

    def __init__(
        self,
        models_dir: Path,
        running: Bundle,
        *,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.check_every_s = check_every_s
        self.clock = clock
        self._feature_names = running.feature_names
        self._seen = {running.version}
        self._next_check = clock() + check_every_s

    def poll(self) -> Bundle | None:
        """A newly published bundle to switch to, or ``None``."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every_s
        path = latest_bundle(self.models_dir)
        if path is None or path.name in self._seen:
            return None
        self._seen.add(path.name)
        try:
            bundle = Bundle.load(path)
            bundle.warm_up()  # its scoring kernel ready before it takes over a batch
        except (FraudstreamError, OSError, ValueError) as exc:
            log.error("new bundle %s cannot be loaded, keeping the running model: %s", path, exc)
            return None
        self._seen.add(bundle.version)
        if bundle.feature_names != self._feature_names:
            log.error(
                "new bundle %s uses other features (mode %s) than the running engine; restart the "
                "detector to switch to it",
                bundle.version,
                bundle.mode,
            )
            return None
        return bundle
