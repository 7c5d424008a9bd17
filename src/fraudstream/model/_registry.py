"""Which bundle is in service: candidates, the promoted bundle, retired ones.

Every new bundle under the models directory is a **candidate**; nothing scores with it until
it is promoted. The promotion state is one small file, ``<models_dir>/promotion.json``::

    {"promoted": "20261123T071500Z-1a2b3c4d",
     "promoted_at": "2026-11-23T07:20:00+00:00",
     "history": [{"version": "...", "promoted_at": "..."}, ...],
     "challenger": "20261124T071500Z-5e6f7a8b", "challenger_since": "2026-11-24T07:20:00+00:00"}

It is rewritten whole and atomically (a temporary file in the same directory, flushed and
fsynced, then ``os.replace``), so a reader sees the old pointer or the new one, never half of
one. ``promoted`` is the bundle that ``detect`` loads and running detectors switch to;
a version in ``history`` that is no longer promoted is **retired**. Bundle directories are
never changed by promotion. Two promotions racing may lose one ``history`` entry, never the
pointer's integrity.

``challenger`` (optional) is the bundle scored in shadow beside the promoted one
(``fraudstream retrain`` registers it; ``detect`` loads it when started without ``--model``).
Promoting the challenger clears it. :func:`rollback` puts the previous promoted version back
in service; a history entry it writes names the version rolled back (``rollback_of``), which no
later rollback returns to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fraudstream.errors import ModelError
from fraudstream.model._bundle import BUNDLE_FILE

__all__ = [
    "PROMOTION_FILE",
    "BundleEntry",
    "bundle_dirs",
    "challenger_path",
    "challenger_version",
    "latest_bundle",
    "list_bundles",
    "promote",
    "promoted_version",
    "rollback",
    "rollback_target",
    "set_challenger",
]

#: The promotion pointer's file name inside the models directory.
PROMOTION_FILE: Final = "promotion.json"


@dataclass(frozen=True)
class BundleEntry:
    """One bundle directory as ``fraudstream model list`` shows it."""

    version: str
    path: Path
    status: str  # candidate | promoted | challenger | retired
    created_at: str
    scoring_model: str
    manifest: dict[str, Any]


def bundle_dirs(models_dir: Path) -> list[Path]:
    """Complete bundle directories under ``models_dir``, oldest first (by name, then mtime)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    found = [
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and (d / BUNDLE_FILE).is_file()
    ]
    # Names start with the UTC creation second; the manifest's mtime breaks ties.
    return sorted(found, key=lambda d: (d.name.split("-")[0], (d / BUNDLE_FILE).stat().st_mtime_ns))


def _read_state(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / PROMOTION_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"promoted": None, "history": []}
    except OSError as exc:
        raise ModelError(f"cannot read the promotion state {path}: {exc}") from exc
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or not isinstance(state.get("history", []), list):
            raise ValueError("not an object with a history list")
    except ValueError as exc:
        raise ModelError(
            f"{path} is corrupt ({exc}); promote a version again with "
            "`fraudstream model promote VERSION`"
        ) from exc
    return state


def promoted_version(models_dir: Path) -> str | None:
    """The promoted bundle's version, or ``None`` when nothing has been promoted."""
    version = _read_state(models_dir).get("promoted")
    return str(version) if version else None


def latest_bundle(models_dir: Path) -> Path | None:
    """The bundle in service: the promoted one's directory, or ``None``.

    A candidate (any bundle not promoted) is never returned, however new. A promoted version
    whose directory is gone or incomplete is an error, not a silent fallback.
    """
    version = promoted_version(models_dir)
    if version is None:
        return None
    path = Path(models_dir) / version
    if not (path / BUNDLE_FILE).is_file():
        raise ModelError(
            f"the promoted bundle {version} is missing from {models_dir}; promote another "
            "with `fraudstream model promote VERSION`"
        )
    return path


def promote(
    models_dir: Path,
    version: str,
    *,
    now: dt.datetime | None = None,
    rollback_of: str | None = None,
) -> Path:
    """Make ``version`` the bundle in service (atomically) and return its directory.

    The challenger pointer is kept, unless ``version`` is the challenger (then cleared).
    ``rollback_of``: the version this promotion rolls back (recorded in the history).
    """
    root = Path(models_dir)
    path = _bundle_path(root, version)
    state = _read_state(root)
    at = (now or dt.datetime.now(dt.UTC)).isoformat()
    entry: dict[str, Any] = {"version": version, "promoted_at": at}
    if rollback_of is not None:
        entry["rollback_of"] = rollback_of
    state.update(promoted=version, promoted_at=at, history=[*state.get("history", []), entry])
    if state.get("challenger") == version:
        state.pop("challenger", None)
        state.pop("challenger_since", None)
    _write_atomically(root / PROMOTION_FILE, state)
    return path


def _bundle_path(root: Path, version: str) -> Path:
    """The directory of bundle ``version`` under ``root``, or :class:`ModelError`."""
    path = root / version
    if "/" in version or version.startswith(".") or not (path / BUNDLE_FILE).is_file():
        known = ", ".join(d.name for d in bundle_dirs(root)) or "none"
        raise ModelError(f"no bundle {version!r} under {root} (bundles: {known})")
    return path


def challenger_version(models_dir: Path) -> str | None:
    """The bundle scored in shadow beside the promoted one, or ``None``."""
    version = _read_state(models_dir).get("challenger")
    return str(version) if version else None


def challenger_path(models_dir: Path) -> Path | None:
    """The challenger's bundle directory (``detect`` scores it in shadow), or ``None``."""
    version = challenger_version(models_dir)
    return None if version is None else _bundle_path(Path(models_dir), version)


def set_challenger(
    models_dir: Path, version: str | None, *, now: dt.datetime | None = None
) -> Path | None:
    """Register ``version`` as the challenger (``None``: clear it), atomically; its directory."""
    root = Path(models_dir)
    state = _read_state(root)
    state.setdefault("promoted", None)
    if version is None:
        state.pop("challenger", None)
        state.pop("challenger_since", None)
        _write_atomically(root / PROMOTION_FILE, state)
        return None
    path = _bundle_path(root, version)
    if version == state.get("promoted"):
        raise ModelError(f"bundle {version} is the promoted one; a challenger must be another")
    state["challenger"] = version
    state["challenger_since"] = (now or dt.datetime.now(dt.UTC)).isoformat()
    _write_atomically(root / PROMOTION_FILE, state)
    return path


def rollback_target(models_dir: Path) -> str | None:
    """The version :func:`rollback` would put back: the latest promoted before the current one,
    skipping versions already rolled back; ``None`` when there is none."""
    state = _read_state(models_dir)
    current = state.get("promoted")
    history = [h for h in state.get("history", []) if isinstance(h, dict)]
    undone = {str(h["rollback_of"]) for h in history if h.get("rollback_of")}
    for h in reversed(history):
        version = str(h.get("version"))
        if version != current and version not in undone:
            return version
    return None


def rollback(models_dir: Path, *, now: dt.datetime | None = None) -> tuple[str, str]:
    """Put the previous promoted version back in service: ``(rolled back, now promoted)``."""
    current = promoted_version(models_dir)
    target = rollback_target(models_dir)
    if current is None or target is None:
        raise ModelError(f"nothing to roll back to under {models_dir}: no earlier promoted version")
    promote(models_dir, target, now=now, rollback_of=current)
    return current, target


def _write_atomically(path: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_bundles(models_dir: Path) -> list[BundleEntry]:
    """Every complete bundle, oldest first, with its status and manifest."""
    state = _read_state(models_dir)
    promoted, challenger = state.get("promoted"), state.get("challenger")
    ever = {str(h.get("version")) for h in state.get("history", []) if isinstance(h, dict)}
    out = []
    for d in bundle_dirs(models_dir):
        try:
            manifest: dict[str, Any] = json.loads((d / BUNDLE_FILE).read_text())
        except (OSError, ValueError):
            manifest = {}
        status = (
            "promoted"
            if d.name == promoted
            else "challenger"
            if d.name == challenger
            else "retired"
            if d.name in ever
            else "candidate"
        )
        out.append(
            BundleEntry(
                version=d.name,
                path=d,
                status=status,
                created_at=str(manifest.get("created_at", "")),
                scoring_model=str(manifest.get("scoring_model", "lightgbm")),
                manifest=manifest,
            )
        )
    return out
