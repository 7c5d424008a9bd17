"""Notifications of alerts to people: webhook and e-mail channels, retries, rate limit, de-dup.

Never in the detector's hot path: ``fraudstream notify`` feeds ``Alert`` messages from the alerts
topic to a ``Dispatcher`` (``_notifier.run_notifier``). Each delivery is recorded per channel
through a ``NotificationLog`` (the store's ``notifications_sent`` table) before the alert's offset
is committed, so a restart never notifies twice. A notification that fails for good (e.g. HTTP
4xx, or after a configured number of attempts) is recorded there too (table
``notification_failures``), never dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from email.message import EmailMessage
from typing import Final, Protocol, TypeVar, runtime_checkable

import msgspec
from pydantic import SecretStr

from fraudstream._redact import redact
from fraudstream.errors import FraudstreamError, StoreError
from fraudstream.sinks._deadline import Deadline, deadline_opener
from fraudstream.sinks._drift import DRIFT_DECISION
from fraudstream.sinks._notify_metrics import NotifyMetrics
from fraudstream.sinks._rows import Alert

__all__ = [
    "Channel",
    "Dispatcher",
    "EmailChannel",
    "NotificationLog",
    "NotifyError",
    "RateLimiter",
    "WebhookChannel",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Fraudstream-Signature"
#: Of an answer's body, read and ignored: a webhook's answer is its status.
_MAX_ANSWER_BYTES: Final = 64 * 1024
_T = TypeVar("_T")
_encode = msgspec.json.Encoder().encode


class NotifyError(FraudstreamError):
    """A notification could not be delivered; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """One way to tell people about an alert."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise ``NotifyError``."""


@runtime_checkable
class NotificationLog(Protocol):
    """Where notifications are recorded (the store): delivered ones and failed-for-good ones."""

    def record_notification_sent(self, alert_id: str, channel: str) -> None:
        """Record (durably) that ``alert_id`` was delivered on ``channel``."""

    def record_notification_failure(
        self, alert_id: str, channel: str, attempts: int, error: str, payload: str
    ) -> None:
        """Record (durably) that ``alert_id`` could not be sent on ``channel``."""

    def notified_channels(self, alert_id: str) -> set[str]:
        """The channels on which ``alert_id`` was delivered or recorded as failed."""


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """JSON POST of the alert, signed with ``secret`` in ``X-Fraudstream-Signature``.

    ``timeout_s`` bounds a whole delivery (connect, TLS, headers and body): a server that
    trickles its answer is cut off at the deadline. ``cancelled`` (e.g. a stop event's
    ``is_set``) cuts a delivery short within 0.1 s. A failure is a ``NotifyError``: transient
    (unreachable, too slow, not an HTTP answer, HTTP 5xx/408/425/429) or permanent (other 4xx, a
    redirect). Messages name the URL without its password or tokens (``shown_url``).
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: SecretStr | None = None,
        timeout_s: float = 5.0,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise NotifyError(f"webhook URL {redact(url)!r} must start with http:// or https://")
        self.url = url
        self.shown_url = redact(url)  # for messages: no password or token
        self.secret = secret
        self.timeout_s = timeout_s
        self.cancelled = cancelled

    def send(self, alert: Alert) -> None:
        body = _encode(alert)
        headers = {"Content-Type": "application/json", "User-Agent": "fraudstream"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret.get_secret_value(), body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked above
        status, failure = 0, None
        with Deadline(self.timeout_s, self.cancelled) as deadline:
            opener = deadline_opener(deadline)
            try:
                with opener.open(request, timeout=self.timeout_s) as response:
                    response.read(_MAX_ANSWER_BYTES)
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                failure = exc
        self._check(alert, deadline.fired, status, failure)

    def _check(
        self, alert: Alert, fired: str | None, status: int, failure: BaseException | None
    ) -> None:
        """Raise the ``NotifyError`` of a delivery that did not succeed."""
        where = f"webhook {self.shown_url}"
        if fired == "stop":
            raise NotifyError(f"{where}: delivery of alert {alert.alert_id} cut short by a stop")
        if fired == "deadline":
            raise NotifyError(
                f"{where} did not answer alert {alert.alert_id} within {self.timeout_s:g} s "
                "(connect, headers and body); will retry"
            ) from failure
        if status:
            raise _status_error(where, status, alert.alert_id)
        if isinstance(failure, http.client.HTTPException | ValueError):
            raise NotifyError(
                f"{where} answered alert {alert.alert_id} with something that is not HTTP "
                f"({_describe(failure)}); will retry"
            ) from failure
        if failure is not None:
            reason = failure.reason if isinstance(failure, urllib.error.URLError) else failure
            raise NotifyError(
                f"{where} unreachable for alert {alert.alert_id}: {reason}; will retry"
            ) from failure


def _status_error(where: str, status: int, alert_id: str) -> NotifyError:
    if 300 <= status < 400:
        return NotifyError(
            f"{where} answered HTTP {status} (a redirect) for alert {alert_id}; set the final "
            "URL in notify.webhook_url",
            permanent=True,
        )
    permanent = 400 <= status < 500 and status not in (408, 425, 429)
    return NotifyError(
        f"{where} answered HTTP {status} for alert {alert_id}"
        + ("; fix the endpoint or its secret" if permanent else "; will retry"),
        permanent=permanent,
    )


def _describe(exc: BaseException) -> str:
    """``exc`` in one short, printable line (a garbage answer can be long and binary)."""
    text = repr(str(exc))
    return f"{type(exc).__name__}: {text[:120]}{'…' if len(text) > 120 else ''}"


class EmailChannel:
    """A plain-text e-mail per alert over SMTP (optional STARTTLS and login).

    STARTTLS verifies the server against the system CAs, or ``ca_file`` (PEM) if given.
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        if not recipients:
            raise NotifyError("e-mail channel has no recipients; set notify.email_to")
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self.ca_file = ca_file

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = (
            f"[fraudstream] {alert.decision.upper()} {alert.kind} {alert.amount:,.2f} "
            f"from {alert.account}"
            if alert.decision != DRIFT_DECISION
            else f"[fraudstream] DRIFT alarm, model {alert.model_version}: "
            + ", ".join(f"{r.feature} PSI {r.value:.2f}" for r in alert.reasons[:3])
        )
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["X-Fraudstream-Alert-Id"] = alert.alert_id
        reasons = "\n".join(
            f"  - {r.feature} = {r.value:g} (contribution {r.contribution:+.3f})"
            for r in alert.reasons
        )
        msg.set_content(
            f"Decision: {alert.decision} (score {alert.score:.3f}, model {alert.model_version})\n"
            f"Transaction: {alert.tx_id}\nAccount: {alert.account} -> {alert.counterparty}\n"
            f"Kind: {alert.kind}  Amount: {alert.amount:,.2f}\nReasons:\n{reasons}\n"
        )
        return msg

    def send(self, alert: Alert) -> None:
        where = f"SMTP server {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.username:
                    secret = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.username, secret)
                smtp.send_message(self.message(alert))
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(
                f"{where} refused the login of {self.username!r}; check notify.smtp_username "
                "and notify.smtp_password",
                permanent=True,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(
                f"{where} refused the recipients {self.recipients}; fix notify.email_to",
                permanent=True,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(
                f"{where} failed for alert {alert.alert_id}: {exc}; will retry"
            ) from exc


class RateLimiter:
    """A token bucket: at most ``rate_per_s`` sends per second, bursts up to ``burst``."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self.clock, self.sleep = clock, sleep
        self._tokens = float(burst)
        self._at = clock()

    def acquire(self) -> None:
        """Wait until a send is allowed, then take its token."""
        while True:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            self.sleep((1 - self._tokens) / self.rate_per_s)


class Dispatcher:
    """Send each new alert whose decision is in ``decisions`` on every channel.

    Retries a failing channel with exponential back-off (``backoff_initial_s`` doubling up to
    ``backoff_max_s``). ``max_attempts=None`` (the default) retries a transient failure (endpoint
    down, HTTP 5xx/408/425/429) until it succeeds: back-pressure, the caller consumes nothing
    meanwhile; ``should_stop``, checked after each failed attempt and each back-off, ends that
    wait with ``NotifyError`` (nothing recorded, nothing must be committed). A permanent failure
    (e.g. HTTP 4xx), or a transient one after ``max_attempts``, is recorded in ``records`` (table
    ``notification_failures``). Every delivery is recorded in ``records`` (table
    ``notifications_sent``) before the next one starts; an alert already
    delivered or recorded on a channel (looked up there, the last ``dedupe_size`` kept in memory)
    is never sent on it again, across restarts too. A failing store holds like a down channel.
    A drift alarm (decision ``drift``, ``sinks._drift``) is sent whatever ``decisions``.
    ``metrics`` counts alerts, deliveries, failures, retries and holds for Prometheus.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        records: NotificationLog,
        *,
        decisions: Collection[str] = ("block",),
        max_attempts: int | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rate: RateLimiter | None = None,
        dedupe_size: int = 100_000,
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] = lambda: False,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self.channels = list(channels)
        self.metrics = metrics if metrics is not None else NotifyMetrics()  # Prometheus
        self.records = records
        self.decisions = frozenset(decisions)
        self.max_attempts = max_attempts
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.rate = rate
        self.dedupe_size = dedupe_size
        self.sleep = sleep
        self.should_stop = should_stop
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self._seen: OrderedDict[str, None] = OrderedDict()

    def handle(self, alert: Alert, *, wait: Callable[[float], None] | None = None) -> bool:
        """Notify about ``alert`` unless filtered or already handled; ``True`` if it was handled.

        ``wait`` (default: ``sleep``) is how a back-off is spent, e.g. polling a paused consumer.
        """
        self.metrics.alert(alert.decision)
        if alert.decision not in self.decisions and alert.decision != DRIFT_DECISION:
            return False
        if alert.alert_id in self._seen:
            self.skipped += 1
            self.metrics.skipped()
            return False
        wait = wait or self.sleep
        done = self._stored(lambda: self.records.notified_channels(alert.alert_id), wait)
        pending = [c for c in self.channels if c.name not in done]
        for channel in pending:
            self._send(channel, alert, wait)
        self.metrics.released()
        self._seen[alert.alert_id] = None
        while len(self._seen) > self.dedupe_size:
            self._seen.popitem(last=False)
        if not pending:
            self.skipped += 1
            self.metrics.skipped()
            log.info("alert %s was already notified before a restart; skipped", alert.alert_id)
        return bool(pending)

    def _send(self, channel: Channel, alert: Alert, wait: Callable[[float], None]) -> None:
        delay = self.backoff_initial_s
        attempt = 0
        while True:
            attempt += 1
            if self.rate is not None:
                self.rate.acquire()
            try:
                channel.send(alert)
            except NotifyError as exc:
                last, permanent = exc, exc.permanent
                log.warning("%s notification attempt %d failed: %s", channel.name, attempt, exc)
            else:
                self._stored(
                    lambda: self.records.record_notification_sent(alert.alert_id, channel.name),
                    wait,
                )
                self.sent += 1
                self.metrics.sent(channel.name)
                if attempt > 1:
                    log.info("%s delivered alert %s again", channel.name, alert.alert_id)
                return
            if self.should_stop():  # before giving up: a stop must not use up the attempts
                raise _stopped(channel, alert) from last
            if permanent or attempt == self.max_attempts:
                break
            self.metrics.retried(channel.name)
            wait(delay)
            if self.should_stop():
                raise _stopped(channel, alert) from last
            delay = min(self.backoff_max_s, delay * 2)
        self.failed += 1
        self.metrics.failed(channel.name)
        log.error(
            "%s notification for alert %s failed for good after %d attempt(s); recorded in "
            "table notification_failures",
            channel.name,
            alert.alert_id,
            attempt,
        )
        payload = _encode(alert).decode()
        self._stored(
            lambda: self.records.record_notification_failure(
                alert.alert_id, channel.name, attempt, str(last), payload
            ),
            wait,
        )

    def _stored(self, action: Callable[[], _T], wait: Callable[[float], None]) -> _T:
        """Run a store ``action``, retried with back-off while the store fails (``StoreError``).

        A delivery that cannot be recorded must not be committed: this holds consumption like a
        down channel; ``should_stop`` ends the wait by raising the ``StoreError``.
        """
        delay = self.backoff_initial_s
        while True:
            try:
                return action()
            except StoreError as exc:
                if self.should_stop():
                    raise
                log.warning("notifier: store failed (%s); retrying in %.1f s", exc, delay)
            self.metrics.store_retried()
            wait(delay)
            delay = min(self.backoff_max_s, delay * 2)


def _stopped(channel: Channel, alert: Alert) -> NotifyError:
    return NotifyError(
        f"stopped while retrying the {channel.name} notification of alert {alert.alert_id}; "
        "it will be retried on restart"
    )
