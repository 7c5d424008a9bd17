"""Model hot reload: the running detector follows the promoted bundle, never a mere candidate,
and the registered challenger it scores in shadow."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from fraudstream.errors import FraudstreamError
from fraudstream.model import Bundle, promoted_version
from fraudstream.model._registry import challenger_path

__all__ = ["ModelWatcher"]

log = logging.getLogger(__name__)


class ModelWatcher:
    """Reads the promotion pointer under ``models_dir`` at most every ``check_every_s`` seconds.

    A new bundle directory (a candidate) changes nothing; when ``fraudstream model promote``
    points at another version than the running one, that bundle is loaded and returned once.
    The detector asks between batches, so a swap never splits a batch. A promoted bundle that
    cannot be loaded, or computes other features than the running engine, is logged once and
    skipped until the pointer changes again.

    With ``follow_challenger``, the challenger pointer (``fraudstream retrain``) is read as
    well: :meth:`poll_challenger` reports a newly registered challenger, or that it is gone
    (promoted or rejected), so shadow scoring starts and stops without a restart.
    """

    def __init__(
        self,
        models_dir: Path,
        running: Bundle,
        *,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        follow_challenger: bool = False,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.check_every_s = check_every_s
        self.clock = clock
        self._feature_names = running.feature_names
        self._extras = running.extras  # categorical codes come from the running vocabulary
        # bundle directory names, as the pointer names them (normally the bundle's version)
        self._running = _name(running)
        self._pointer = self._running  # the promoted name last acted on
        self._next_check = clock() + check_every_s
        self.follow_challenger = follow_challenger
        self._challenger: str | None = None  # the challenger pointer last acted on
        self._next_challenger_check = clock()  # the registered one is loaded at the first batch

    def poll(self) -> Bundle | None:
        """The newly promoted bundle to switch to, or ``None``."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every_s
        try:
            version = promoted_version(self.models_dir)
        except FraudstreamError as exc:
            log.error("keeping model %s: %s", self._running, exc)
            return None
        if version is None or version == self._pointer:
            return None
        self._pointer = version
        if version == self._running:
            return None
        bundle = self._load(self.models_dir / version)
        if bundle is not None:
            self._running = version
        return bundle

    def poll_challenger(self) -> tuple[bool, Bundle | None]:
        """``(changed, bundle)``: whether the registered challenger changed since it was last
        acted on, and the bundle to score in shadow from now (``None``: none any more)."""
        now = self.clock()
        if not self.follow_challenger or now < self._next_challenger_check:
            return False, None
        self._next_challenger_check = now + self.check_every_s
        try:
            path = challenger_path(self.models_dir)
        except FraudstreamError as exc:
            log.error("keeping the challenger %s: %s", self._challenger, exc)
            return False, None
        name = None if path is None else path.name
        if name == self._challenger:
            return False, None
        self._challenger = name
        if path is None:
            return True, None
        bundle = self._load(path, "challenger")
        return (True, bundle) if bundle is not None else (False, None)

    def _load(self, path: Path, role: str = "promoted bundle") -> Bundle | None:
        try:
            bundle = Bundle.load(path)
            bundle.warm_up()  # its scoring kernel ready before it takes over a batch
        except (FraudstreamError, OSError, ValueError) as exc:
            log.error("%s %s cannot be loaded, keeping the running models: %s", role, path, exc)
            return None
        if bundle.feature_names != self._feature_names or bundle.extras != self._extras:
            log.error(
                "%s %s uses other features (mode %s, or extra fields' vocabularies) "
                "than the running engine; "
                "restart the detector to switch to it",
                role,
                bundle.version,
                bundle.mode,
            )
            return None
        return bundle


def _name(bundle: Bundle) -> str:
    """A bundle's directory name, as the pointers name it (normally its version)."""
    return bundle.path.name if bundle.path is not None else bundle.version
