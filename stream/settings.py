"""Every setting of memberstream: one class, one name, one default, one variable.

Values come from (highest first) the environment (`MEMBERSTREAM_*`), `.env`,
and `.memberstream/stack.env`, which `memberstream up` writes so that
`replay` and `tail` in another terminal find the running stack.
No other module reads os.environ.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR = Path(".memberstream")
STACK_ENV = STATE_DIR / "stack.env"


class BadSettings(Exception):
    """Settings that do not fit together, or a secret's file that cannot be read. Not a
    ValueError on purpose: pydantic would wrap it with every input value, the secrets
    among them, into its message."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEMBERSTREAM_", env_file=(str(STACK_ENV), ".env"), extra="ignore")

    # Connections
    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port")
    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC address host:port")
    triton_model: str = "memberstream"
    triton_timeout_s: float = 5.0
    # True when the broker is the embedded Tansu: its workarounds apply (stream/kafka/broker.py).
    embedded_broker: bool = False
    # How every Kafka client connects (stream/kafka/security.py, SECURITY.md): PLAINTEXT,
    # SSL, SASL_PLAINTEXT or SASL_SSL; SASL with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    # Each secret may come from a file instead (`..._FILE`, e.g. a Docker secret).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to trust (default: the system's)")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM), for mutual TLS")
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_key_password_file: Path | None = None
    kafka_ssl_check_hostname: bool = True

    # Privacy (SECURITY.md). With a key, every member id is replaced by its keyed
    # pseudonym (stream/domain/pseudonym.py) before anything is stored or emitted.
    pseudonymization_key: SecretStr | None = None
    pseudonymization_key_file: Path | None = None
    pseudonymization_key_id: str = Field("k1", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    # The worker's HTTP API: with a token, every path but `api_open_paths` needs it
    # (`Authorization: Bearer <token>`, or the dashboard's sign-in cookie). A worker
    # whose web server binds anything but loopback refuses to start without one.
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    api_open_paths: list[str] = ["/health", "/metrics"]

    # The Faust application
    app_id: str = "memberstream"
    partitions: int = Field(4, ge=1, description="partitions of every topic the app declares")
    # Replicas of every topic the app creates (its own and Faust's: the changelog, the
    # frames topic). 1 suits one broker (the embedded one, the compose stack); a cluster
    # that must survive losing a broker needs 3 (docs/SCALING.md).
    topic_replication_factor: int = Field(1, ge=1)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The host other workers reach this one's web server at (Faust's canonical URL, for
    # routing /members between workers). Default: web_host, or, when that binds all
    # addresses (0.0.0.0, ::), this host's own address as its hostname resolves.
    web_advertised_host: str | None = None
    # Address of a running worker's web server (written by `up`, read by clients).
    web_url: str | None = None
    state_dir: Path = STATE_DIR
    log_level: str = "warning"
    # "text" (Faust's lines) or "json": one JSON object per line (stream/log_limit.py).
    log_format: Literal["text", "json"] = "text"
    # The worker's event loops on uvloop (docs/broker.md: +10-19 % for a Faust agent).
    uvloop: bool = True
    # Allocations between young-generation garbage collections in the worker (Python's
    # default: 700; the batcher's process keeps that, it holds no states). The members'
    # states are millions of long-lived objects, and with the default the collector
    # walked them often enough to cost a quarter of the per-event work; 0 keeps
    # Python's default.
    gc_threshold: int = Field(50_000, ge=0)
    # Members kept decoded in the worker (MemberProcessor.cache), past which a commit drops
    # the longest untouched of those neither pending nor being published: their next event
    # decodes them from the store again, and their in-memory churn at the checkpoints and
    # predicted items are gone, as after a restart (docs/SCALING.md). 0: every member kept.
    member_cache_max: int = Field(100_000, ge=0)

    # Batching: a batcher packs up to frame_max_events `shop.events` records per Kafka
    # message (a frame) and the agent takes up to batch_max_frames frames, or what came
    # within frame_batch_within_s (DESIGN.md section 8). With frames=false the agent
    # reads `shop.events` itself, up to batch_max_events records per batch or what came
    # within batch_within_s: one hop less, half the throughput. (5 ms instead of 20 ms
    # with frames: 2,000 events/s p50 about 9 ms lower, throughput the same; without
    # frames it cut the batches and the throughput by a third.)
    batch_max_events: int = Field(2000, ge=1)
    batch_within_s: float = Field(0.02, gt=0)
    frame_batch_within_s: float = Field(0.005, gt=0)
    # Member states and input offsets go to the changelog at most this often (or once
    # this many members are dirty); outputs go out at once.
    changelog_flush_s: float = Field(0.5, gt=0)
    changelog_flush_members: int = Field(20000, ge=1)
    # The worker's producers (outputs, changelog, Faust's own): wait to fill a batch. 0:
    # the outputs of a batch already travel as one record batch per partition.
    producer_linger_s: float = Field(0.0, ge=0)
    # The worker exits (code 3) once the broker has not answered for this long, for its
    # supervisor to restart it (stream/worker/watchdog.py); 0: it waits however long.
    broker_lost_exit_s: float = Field(60.0, ge=0)
    # The worker exits (code 5) once it has not been ready (/health `starting`) for this long
    # without progress (a rebalance, a changelog record recovered) while the broker answers:
    # a recovery or a rebalance that never ends is restarted, not waited on; 0: it waits.
    start_stall_exit_s: float = Field(300.0, ge=0)
    # `memberstream up` restarts a dead worker or Triton after restart_base_s, doubled per
    # death in a row up to restart_max_s; one that ran restart_stable_s starts afresh
    # (stream/tools/supervisor.py).
    restart_base_s: float = Field(1.0, gt=0)
    restart_max_s: float = Field(30.0, gt=0)
    restart_stable_s: float = Field(60.0, gt=0)
    # Against the embedded broker every Fetch waits its full max wait (docs/broker.md, quirk 4).
    tansu_fetch_max_wait_ms: int = Field(20, ge=1)
    # Agent batches whose inactivity checkpoints may await their scores at once while
    # the agent goes on with the next (1: each batch waits for its own).
    batches_in_flight: int = Field(3, ge=1)
    frames: bool = True
    frame_max_events: int = Field(1000, ge=1)
    batch_max_frames: int = Field(8, ge=1)
    # Scoring: requests in flight at once, each for up to triton_max_rows pending members.
    scoring_concurrency: int = Field(2, ge=1)
    triton_max_rows: int = Field(1024, ge=1, description="rows per Triton request (model max_batch_size)")
    # A failed scoring request opens the circuit (stream/scoring/breaker.py): the next
    # try after scoring_retry_base_s, doubled per failed try up to scoring_retry_max_s.
    scoring_retry_base_s: float = Field(0.5, gt=0)
    scoring_retry_max_s: float = Field(30.0, gt=0)
    # How long a batch whose inactivity checkpoints cannot be scored waits for Triton
    # (its outputs, and those of the batches after it, wait with it), before its
    # checkpoints are put back unscored and decided at the member's next chance
    # (docs/RELIABILITY.md). 0: wait as long as the outage lasts.
    scoring_hold_s: float = Field(300.0, ge=0)

    # Members, and the input limits (each breach is dead-lettered with its reason; the
    # contract caps ids and other strings at 128 characters, schemas/shop.events).
    sequence_length: int = Field(50, ge=1, le=200, description="rolling events kept per member (model max_len)")
    max_event_bytes: int = Field(16 * 1024, ge=256, le=1 << 20, description="largest event message")
    max_field_chars: int = Field(128, ge=8, le=128, description="longest id, session or category (the contract's 128, or less)")

    # Policies
    recommendations_k: int = Field(10, ge=1)
    # Recommendation lists (stream/domain/policies/recommendation_policy.Blend, docs/DESIGN.md
    # section 8, "Recommendation lists"): weights of the four signals, chosen on Online Retail's validation split
    # (docs/model.md), the item statistics counted in the stream, and the business filters.
    recommend_model_weight: float = Field(0.5, ge=0)
    recommend_repeat_weight: float = Field(1.0, ge=0)
    recommend_related_weight: float = Field(1.0, ge=0)
    recommend_trending_weight: float = Field(1.0, ge=0)
    recommend_repeat_half_life_days: float = Field(60.0, gt=0)
    recommend_related_items: int = Field(20, ge=1)
    recommend_repeat_share: float = Field(0.5, ge=0, le=1, description="most of the list the member had before; 0: only items new to them")
    recommend_cold_start_events: int = Field(3, ge=0, description="fewer events: no model, related + trending (fallback)")
    recommend_exclude_bought_within_days: float = Field(0.0, ge=0, description="0: bought items stay (replenishment)")
    recommend_catalogue_path: Path | None = Field(None, description="file of item ids, one per line: only these are recommended")
    recommend_include_categories: list[str] = []
    recommend_exclude_categories: list[str] = []
    # Member value (BG/NBD + Gamma-Gamma, stream/domain/member_value.py), fitted with the
    # model and shipped beside its weights; absent: the value fields are null.
    member_value_path: Path | None = Path("triton_repo/memberstream/1/member_value.json")
    item_stats_half_life_days: float = Field(7.0, gt=0)
    item_stats_window: int = Field(10, ge=1, description="previous events an event is paired with")
    item_stats_window_s: float = Field(86400.0, gt=0)
    item_stats_kept: int = Field(100, ge=1, description="neighbours kept per item")
    item_stats_max_items: int = Field(100_000, ge=1, description="items kept (the most popular): the memory bound")
    churn_alert_threshold: float = Field(0.6, gt=0, lt=1)
    # An event more than this behind its partition's watermark is late: applied in event
    # order as any other, but a checkpoint of its member that the watermark has passed
    # already is decided once the watermark has moved on by this much, once, at the
    # latest checkpoint reached (stream/domain/inactivity.py, docs/RELIABILITY.md).
    allowed_lateness_s: float = Field(86400.0, ge=0)
    # Days of silence after a member's newest event at which they are re-scored.
    inactivity_checkpoints_days: list[int] = [7, 14, 21, 30, 45, 60, 90]
    # Lifecycle stages from the churn probability (P(no event within the served horizon,
    # 90 days), calibrated: docs/model.md): `at_risk` once an alert opens an episode
    # (churn_alert_threshold), `churned` once a checkpoint's probability reaches this.
    churned_probability: float = Field(0.8, gt=0, le=1)
    loyal_after_visits: int = 5
    tier_thresholds: list[float] = [500.0, 2000.0]  # bronze < silver < gold, by total spend
    # Anomalies (stream/domain/policies/anomaly_policy.py, README "Anomalies"). Orders: a
    # burst of `anomaly_burst_orders` within an hour; a new member's (first seen within
    # `anomaly_new_member_hours`) `anomaly_new_member_orders` orders within
    # `anomaly_new_member_minutes`, each at the shop's `anomaly_high_value_quantile` of order
    # spend or more (known once `anomaly_high_value_min_orders` orders were seen); an order
    # over `anomaly_spike_factor` x the member's median. Sequences: a run of events outside
    # the model's top-K whose chance under the member's own hit rate is at most
    # `anomaly_unlikely_chance`, after `anomaly_unlikely_history` predicted events. At most
    # one anomaly of each kind per member within `anomaly_min_interval_s` of event time.
    anomaly_burst_orders: int = Field(4, ge=2)
    anomaly_new_member_hours: float = Field(24.0, gt=0)
    anomaly_new_member_orders: int = Field(3, ge=2)
    anomaly_new_member_minutes: float = Field(30.0, gt=0)
    anomaly_high_value_quantile: float = Field(0.9, gt=0, lt=1)
    anomaly_high_value_min_orders: int = Field(200, ge=1)
    anomaly_spike_factor: float = Field(10.0, gt=1)
    anomaly_unlikely_chance: float = Field(1e-3, gt=0, lt=1)
    anomaly_unlikely_history: int = Field(20, ge=1)
    anomaly_min_interval_s: float = Field(3600.0, ge=0)

    # Data for training, demo logs and evaluation
    data_dir: Path = Path("../shared/data")
    triton_repo: Path = Path("triton_repo")

    @field_validator("inactivity_checkpoints_days")
    @classmethod
    def _ascending_days(cls, days: list[int]) -> list[int]:
        """Ascending and distinct: one order for all that indexes the checkpoints (the
        schedule, `MemberState.check_index`, the silences sent to Triton and the
        churn at each that comes back)."""
        if any(d < 1 for d in days):
            raise ValueError("checkpoint days must be at least 1")
        return sorted(set(days))

    @model_validator(mode="after")
    def _secrets_from_files(self) -> "Settings":
        """`X_file` gives secret X from a file (its content, without the final newline)."""
        for name in ("kafka_sasl_password", "kafka_ssl_key_password", "pseudonymization_key", "api_token"):
            path = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                raise BadSettings(f"MEMBERSTREAM_{name.upper()} and MEMBERSTREAM_{name.upper()}_FILE are both set; give one")
            try:
                text = Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                raise BadSettings(f"MEMBERSTREAM_{name.upper()}_FILE {path}: {exc.strerror or exc}") from None
            if not text:
                raise BadSettings(f"MEMBERSTREAM_{name.upper()}_FILE {path} is empty")
            setattr(self, name, SecretStr(text))
        if self.api_token is not None and len(self.api_token.get_secret_value()) < 16:
            raise BadSettings("MEMBERSTREAM_API_TOKEN: at least 16 characters")
        try:
            self.kafka_security  # its own checks (SASL needs a user and a password, ...)
            self.pseudonymizer()
        except ValueError as exc:
            raise BadSettings(str(exc)) from None
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.broker_url.removeprefix("kafka://")

    @property
    def kafka_security(self):
        from stream.kafka.security import KafkaSecurity

        return KafkaSecurity(self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_sasl_username,
                             self.kafka_sasl_password, self.kafka_ssl_cafile, self.kafka_ssl_certfile,
                             self.kafka_ssl_keyfile, self.kafka_ssl_key_password, self.kafka_ssl_check_hostname)

    def pseudonymizer(self):
        """The member-id pseudonymizer, or None when no key is configured."""
        from stream.domain.pseudonym import Pseudonymizer

        if self.pseudonymization_key is None:
            return None
        return Pseudonymizer(self.pseudonymization_key.get_secret_value(), self.pseudonymization_key_id)


def environment(**values: object) -> dict[str, str]:
    """The MEMBERSTREAM_* variables that give a child process these settings, by field
    name (`environment(partitions=4, frames=False)`)."""
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"no such setting: {', '.join(sorted(unknown))}")
    return {f"MEMBERSTREAM_{name.upper()}": _env_text(value) for name, value in values.items()}


def _env_text(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)
