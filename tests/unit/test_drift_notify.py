"""Drift alarms stored by the detector reach the notifier's channels once each."""

from __future__ import annotations

from pathlib import Path

from fraudstream.cli._notify import drift_notices
from fraudstream.config import DriftSettings
from fraudstream.sinks import Alert, Dispatcher, DriftWindow, EmailChannel, SQLiteStore

NAMES = ("amount", "tx_count_by_account_1h", "score")
WINDOW_MS = 60_000


class Collect:
    """A channel that keeps what it is sent."""

    name = "webhook"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


def _store(tmp_path: Path, alarms: list[bool]) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "store.db")
    store.open()
    windows = [
        DriftWindow(
            WINDOW_MS * (k + 1),
            WINDOW_MS,
            "v1",
            2_000,
            NAMES,
            (0.4 if on else 0.05, 3.0, 0.3 if on else 0.02),
            on,
        )
        for k, on in enumerate(alarms)
    ]
    store.write_drift(windows)
    store.flush()
    return store


def test_each_raised_alarm_is_sent_once_naming_what_counts(tmp_path: Path) -> None:
    store = _store(tmp_path, [False, True, True, False, True])
    channel = Collect()
    dispatcher = Dispatcher([channel], store, decisions=("block",))
    poll = drift_notices(store, dispatcher, DriftSettings())
    assert poll(lambda _s: None) == 2  # raised at the 2nd and the 5th window, not the 3rd
    assert [a.alert_id for a in channel.sent] == [
        f"drift:v1:{2 * WINDOW_MS}",
        f"drift:v1:{5 * WINDOW_MS}",
    ]
    first = channel.sent[0]
    assert first.decision == "drift" and first.score == 0.4
    # the volume feature drifted most but does not count for the alarm: not named
    assert [r.feature for r in first.reasons] == ["amount", "score"]
    assert poll(lambda _s: None) == 0
    again = Collect()
    restarted = drift_notices(store, Dispatcher([again], store), DriftSettings())
    assert restarted(lambda _s: None) == 0 and again.sent == []  # recorded as delivered
    store.close()


def test_the_email_of_a_drift_alarm_names_the_features(tmp_path: Path) -> None:
    store = _store(tmp_path, [True])
    channel = Collect()
    drift_notices(store, Dispatcher([channel], store), DriftSettings())(lambda _s: None)
    email = EmailChannel("127.0.0.1", 25, sender="a@b", recipients=["c@d"])
    subject = email.message(channel.sent[0])["Subject"]
    assert (
        subject.startswith("[fraudstream] DRIFT alarm, model v1") and "amount PSI 0.40" in subject
    )
    store.close()
