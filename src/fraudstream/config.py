"""Typed settings: CLI > environment (``FRAUDSTREAM_…``, nested with ``__``) > ``.env`` > defaults.

Only the edges (cli, api, dashboard) build :class:`Settings`; the rest takes typed arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ApiSettings",
    "CostSettings",
    "DashboardSettings",
    "DetectSettings",
    "DriftSettings",
    "KafkaSettings",
    "LabelsSettings",
    "NotifySettings",
    "ReplaySettings",
    "SchemaSettings",
    "Settings",
    "SimulateSettings",
    "StoreSettings",
    "TopicSettings",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """Connection to Kafka. Empty ``bootstrap_servers`` means: use the embedded broker."""

    bootstrap_servers: str = ""
    embedded_port: int = 9092
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    partitions: int = Field(default=4, ge=1)

    def client_config(self, bootstrap_servers: str) -> dict[str, Any]:
        """librdkafka settings shared by every client (secrets included, never log them)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        return conf


class TopicSettings(_Frozen):
    transactions: str = "transactions"
    alerts: str = "fraud-alerts"
    dlq: str = "transactions.dlq"
    labels: str = "fraud-labels"


class StoreSettings(_Frozen):
    """``sqlite:///path`` (default: ``<data_dir>/fraudstream.db``) or ``postgresql://…``."""

    url: str = ""
    pg_schema: str | None = Field(
        default=None, description="PostgreSQL schema (created on open) [default: search_path]"
    )
    retention_days: float | None = Field(
        default=None, gt=0, description="delete enriched transactions older than this"
    )


class CostSettings(_Frozen):
    """Business costs that set the review/block thresholds."""

    missed_fraud_share: float = Field(
        default=1.0, ge=0, description="share of a missed fraud's amount lost"
    )
    review_cost: float = Field(default=5.0, ge=0, description="cost of one analyst review")
    blocked_good_cost: float = Field(
        default=50.0, ge=0, description="cost of blocking a good customer"
    )
    max_alert_share: float = Field(
        default=0.01, gt=0, le=1, description="review capacity: largest share of tx alerted"
    )


#: Loopback and the private address ranges (IPv4 and IPv6).
PRIVATE_NETWORKS: Final = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
)


class DetectSettings(_Frozen):
    group_id: str = "fraudstream-detector"
    #: Batches are whatever is ready, up to this: large under load, small when traffic is light.
    batch_max: int = Field(default=20_000, ge=1)
    #: Records the consumer may prefetch, in MiB (librdkafka ``queued.max.messages.kbytes``).
    prefetch_mib: int = Field(default=256, ge=1)
    batch_timeout_ms: int = Field(default=100, ge=1)
    #: How long the broker may hold a fetch (librdkafka ``fetch.wait.max.ms``) at the start.
    #: The embedded broker holds every fetch this long (latency) and answers one that takes
    #: longer with nothing, which happens as topics grow; a stalled detector rejoins with 4x
    #: the wait, up to 1,600 ms (docs/notes/stall.md). A real Kafka cluster answers at once.
    fetch_wait_ms: int = Field(default=25, ge=1, le=10_000)
    #: Lag with nothing consumed for this long is a stall: logged, shown, counted, healed.
    stall_after_s: float = Field(default=20.0, gt=0)
    #: Serve Prometheus metrics on <metrics_host>:<port>/metrics (0: not served).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: The address the metrics listen on: loopback by default; ``0.0.0.0`` (every interface)
    #: for a Prometheus on another host or a container platform that scrapes the pod's address.
    metrics_host: str = Field(default="127.0.0.1", min_length=1)
    #: Read the labels topic (every partition) into the label features; off: no label features
    #: change (a bundle trained with labels then sees none: only for tests and benchmarks).
    labels: bool = True
    session_timeout_ms: int = Field(default=6000, ge=1000)
    window_ms: int = 30_000
    window_step_ms: int = 1_000
    #: Event-time guard (README "Input rules"): a transaction whose event time is more than this
    #: ahead of its record's broker timestamp goes to the dead-letter topic (unset: the
    #: format's default, one day for PaySim, 0 for card records).
    max_future_skew_ms: int | None = Field(default=None, ge=0)
    #: ... and one more than this behind its partition's watermark, the latest event time
    #: accepted from the partition (unset: two days for PaySim, a day of skew plus a day of
    #: delivery delay; 0 for card records, which the card engine needs in event-time order).
    #: At least ``max_future_skew_ms``, and below the 30-day TTL of entity state.
    max_lateness_ms: int | None = Field(default=None, ge=0)
    #: Snapshot each partition's feature state (docs/architecture.md, "State snapshots"): a
    #: restore loads the newest one at or below the committed offset and replays only the tail.
    snapshots: bool = True
    #: A partition is snapshotted after this many new records ...
    snapshot_every_records: int = Field(default=250_000, ge=1)
    #: ... or after this long with any new record (and on revoke and shutdown).
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    #: Where snapshots live (unset: ``<data_dir>/state``); local to the machine.
    snapshot_dir: Path | None = None
    #: A decision the API awaits goes straight to its instance only at an address in these
    #: networks (``ip/prefix``; ``fraudstream serve`` names its listener in each record), else
    #: on the decisions topic. Default: loopback and the private ranges.
    reply_networks: tuple[str, ...] = PRIVATE_NETWORKS
    #: Also keep them in shared object storage, ``s3://bucket/prefix`` (unset: local only), so
    #: that a member on another machine restores a partition from a snapshot plus the tail.
    #: Credentials come from the AWS chain (``AWS_ACCESS_KEY_ID``, a role, ...).
    snapshot_url: str | None = Field(default=None, pattern=r"^s3://[^/]+")
    #: An S3-compatible endpoint for ``snapshot_url`` (MinIO, a bank's own; unset: AWS S3).
    snapshot_s3_endpoint_url: str | None = None
    #: The region of ``snapshot_url``'s bucket (unset: the AWS chain's, ``AWS_DEFAULT_REGION``).
    snapshot_s3_region: str | None = None


class DriftSettings(_Frozen):
    """Drift of the scored stream against the bundle's training reference (docs/drift.md)."""

    enabled: bool = True
    #: Tumbling event-time windows; each closed window gets a PSI per feature and the score.
    window_ms: int = Field(default=180_000, ge=1_000)
    #: A window with fewer scored rows is not evaluated.
    min_rows: int = Field(default=1_000, ge=1)
    #: PSI over this (0.1: watch, 0.25: act) for ``alarm_windows`` windows in a row: the alarm.
    threshold: float = Field(default=0.25, gt=0)
    alarm_windows: int = Field(default=2, ge=1)
    #: Which histograms can raise the alarm (``model._drift.feature_group``): volume features
    #: follow the daily traffic cycle and label features the label feed, so both only show.
    alarm_groups: tuple[Literal["population", "volume", "labels", "score"], ...] = (
        "population",
        "score",
    )
    #: Features shown but never alarming (e.g. one a team has seen drift harmlessly).
    ignore: tuple[str, ...] = ()
    #: Windows ending within this much event time of the first row a monitor sees are stored
    #: but never alarm: a detector that starts with empty state (a new deployment, the demo)
    #: computes its first hour of per-entity features unlike training's warm history.
    cold_start_ms: int = Field(default=3_600_000, ge=0)


class NotifySettings(_Frozen):
    """``fraudstream notify``: which alerts reach people, and how."""

    group_id: str = "fraudstream-notifier"
    decisions: tuple[Literal["review", "block"], ...] = ("block",)
    channels: tuple[Literal["webhook", "email"], ...] = ()
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ca_file: str | None = Field(
        default=None, description="PEM CA bundle for STARTTLS [default: system CAs]"
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    email_from: str = "fraudstream@localhost"
    email_to: tuple[str, ...] = ()
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="give up after this many attempts and record the failure "
        "[default: retry a transient failure until delivered, holding consumption]",
    )
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    rate_per_s: float = Field(default=10.0, gt=0, description="notifications per second")
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="serve Prometheus metrics on METRICS_HOST:<port>/metrics (0: not served)",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="address the metrics listen on (0.0.0.0: every interface)",
    )


class DashboardSettings(_Frozen):
    """``fraudstream dashboard``: where it listens and how fresh its pages are."""

    port: int = Field(default=8501, ge=0, le=65535, description="0: a free port")
    refresh_s: float = Field(default=2.0, gt=0, description="Live page refresh period")
    cache_ttl_s: float = Field(default=2.0, ge=0, description="query cache lifetime")
    sample_rows: int = Field(
        default=200_000, ge=1, description="newest transactions behind distributions"
    )
    currency: str = Field(
        default="CU",
        max_length=12,
        description="currency shown with amounts, e.g. EUR [default CU: currency units, the "
        "simulator's amounts have none]",
    )
    analyst: str = Field(
        default="",
        max_length=100,
        description="unused since the dashboard's sign-in (verdicts are signed by the signed-in "
        "user); kept so that existing settings still load",
    )
    user_header: str = Field(
        default="",
        max_length=100,
        description="HTTP header in which a reverse proxy names the signed-in user, e.g. "
        "X-Forwarded-User (the role comes from `fraudstream users`; not listed: viewer); set it "
        "only behind a proxy that overwrites the header",
    )


class SimulateSettings(_Frozen):
    rate: float = 500.0
    accounts: int = 20_000
    seed: int = 7
    #: How long the producer gathers records into one batch (librdkafka ``linger.ms``). Each
    #: batch is one object in the embedded broker, whose reads slow down with every object a
    #: partition holds: 100 ms makes ~10 batches a second per partition at 500 tx/s instead of
    #: ~50 (docs/notes/stall.md). A bank's producers choose their own.
    linger_ms: int = Field(default=100, ge=0, le=10_000)


class ReplaySettings(_Frozen):
    """Transaction files (``replay`` and ``train DATA`` alike): other files' column names mapped
    onto a supported format's (matched in any case)."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="target field -> source column, e.g. FRAUDSTREAM_REPLAY__COLUMNS__AMOUNT=amt",
    )


class SchemaSettings(_Frozen):
    """The transaction files' schema declaration (docs/your-data.md): a TOML file, and fields
    given inline on top of it (source field -> a role, or a table as in the file)."""

    file: Path | None = Field(
        default=None, description="schema declaration (TOML), e.g. FRAUDSTREAM_SCHEMA__FILE=s.toml"
    )
    format: Literal["paysim", "card"] | None = Field(
        default=None, description="the files' format [default: the declaration's, or inferred]"
    )
    fields: dict[str, str | dict[str, str]] = Field(
        default_factory=dict,
        description="source field -> role, e.g. FRAUDSTREAM_SCHEMA__FIELDS__AMT=amount or "
        "FRAUDSTREAM_SCHEMA__FIELDS__UNIX_TIME__ROLE=event_time with …__UNIX_TIME__UNIT=s",
    )


class LabelsSettings(_Frozen):
    """Label files (``labels import``): their column names mapped onto the label's fields
    (``tx_id``, ``label``, ``labelled_at``, ``account``, ``source``, ``reason``; any case)."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="label field -> file column, e.g. FRAUDSTREAM_LABELS__COLUMNS__TX_ID=case_ref",
    )
    source: Literal["analyst", "chargeback", "dispute", "rule", "simulator"] = Field(
        default="chargeback", description="source of rows without a source column"
    )


class ApiSettings(_Frozen):
    """``fraudstream serve``: the synchronous decision API (docs/api.md)."""

    host: str = Field(default="127.0.0.1", description="address the API listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="0: a free port")
    budget_ms: int = Field(
        default=100, ge=1, le=60_000, description="longest wait for the detector's decision"
    )
    fallback_decision: Literal["allow", "review", "block"] = Field(
        default="review", description='answered, marked "fallback": true, when the budget runs out'
    )
    decisions_topic: str = Field(
        default="decisions", description="where detectors answer the API's records, keyed by id"
    )
    decisions_partitions: int = Field(
        default=1, ge=1, description="partitions of the decisions topic when the API creates it"
    )
    max_body_bytes: int = Field(default=16_384, ge=256, description="larger bodies get 413")
    linger_ms: int = Field(
        default=5, ge=0, le=1_000, description="how long the API's producer gathers records"
    )
    fetch_wait_ms: int = Field(
        default=10, ge=1, le=1_000, description="how long the broker may hold a decisions fetch"
    )
    pending_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="how long a retry of an undecided transaction waits for the first request's "
        "decision instead of producing it again",
    )
    key_cache_s: float = Field(
        default=5.0, ge=0, description="API keys are re-read (revocations seen) this often"
    )
    direct_replies: bool = Field(
        default=True,
        description="detectors answer this instance on a TCP connection to its reply listener "
        "(the decisions topic stays the fallback); off: on the decisions topic only",
    )
    reply_host: str = Field(
        default="127.0.0.1", description="address the reply listener binds (an IP address)"
    )
    reply_port: int = Field(default=0, ge=0, le=65535, description="0: a free port")
    reply_advertised_host: str | None = Field(
        default=None,
        description="the IP address detectors reach the listener at (unset: reply_host; set it "
        "when binding 0.0.0.0, e.g. to the pod's IP)",
    )


class Settings(BaseSettings):
    """All of fraudstream's settings."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    store: StoreSettings = StoreSettings()
    costs: CostSettings = CostSettings()
    detect: DetectSettings = DetectSettings()
    drift: DriftSettings = DriftSettings()
    simulate: SimulateSettings = SimulateSettings()
    replay: ReplaySettings = ReplaySettings()
    #: ``FRAUDSTREAM_SCHEMA__…`` (``schema`` itself is a name pydantic's BaseModel keeps).
    data_schema: SchemaSettings = Field(
        default=SchemaSettings(),
        validation_alias=AliasChoices("fraudstream_schema", "data_schema"),
    )
    labels: LabelsSettings = LabelsSettings()
    notify: NotifySettings = NotifySettings()
    dashboard: DashboardSettings = DashboardSettings()
    api: ApiSettings = ApiSettings()

    def store_url(self) -> str:
        """The configured store URL, defaulting to a SQLite file under ``data_dir``."""
        return self.store.url or f"sqlite:///{self.data_dir / 'fraudstream.db'}"
