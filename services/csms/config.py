"""Settings for every CSMS process, read from `CSMS_*` environment variables."""

from __future__ import annotations

import socket
from enum import StrEnum
from functools import lru_cache
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UnknownStationPolicy(StrEnum):
    """What a BootNotification from an identity the CSMS has never registered gets."""

    ACCEPT = "accept"
    PENDING = "pending"
    REJECT = "reject"

    @property
    def boot_status(self) -> str:
        """The BootNotification status this policy answers with."""
        return {"accept": "Accepted", "pending": "Pending", "reject": "Rejected"}[self.value]


def _default_instance_id() -> str:
    return socket.gethostname()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="ignore")

    # Infrastructure. No AMQP URL means the in-process bus (standalone mode).
    amqp_url: str | None = None
    database_url: str = "sqlite+aiosqlite:///./csms.db"
    instance_id: str = Field(default_factory=_default_instance_id)

    # Listening addresses.
    ocpp_host: str = "0.0.0.0"
    ocpp_port: int = 9000
    api_host: str = "0.0.0.0"
    api_port: int = 8000

    # OCPP behaviour.
    heartbeat_interval: int = Field(default=300, ge=1)
    unknown_station_policy: UnknownStationPolicy = UnknownStationPolicy.ACCEPT
    # Interval sent with Pending/Rejected: the minimum wait before the next BootNotification.
    boot_retry_interval: int = Field(default=60, ge=1)
    # How long the gateway waits for the boot consumer before answering Pending itself.
    boot_decision_timeout: float = Field(default=10.0, gt=0)
    boot_fallback_interval: int = Field(default=10, ge=1)
    # How long a station's registration state may take to arrive before a CALL fails.
    presence_timeout: float = Field(default=10.0, gt=0)
    # WebSocket keep-alive: a socket silent this long is pinged; one whose pong is
    # `ping_timeout` late is dropped (1011).
    ping_interval: float = Field(default=30.0, gt=0)
    ping_timeout: float = Field(default=30.0, gt=0)
    max_frame_bytes: int = Field(default=65536, ge=1024)
    # permessage-deflate windows (2^bits bytes) and zlib memLevel: memory per socket.
    deflate_window_bits: int = Field(default=10, ge=9, le=15)
    deflate_mem_level: int = Field(default=1, ge=1, le=9)
    # Messages shorter than this many bytes go uncompressed (ADR 0017); 0 compresses all.
    deflate_plain_below: int = Field(default=64, ge=0, le=1024)
    listen_backlog: int = Field(default=4096, ge=1)
    handshake_timeout: float = Field(default=30.0, gt=0)
    # Liveness is batched: one `station.seen` message per gateway per interval.
    seen_flush_interval: float = Field(default=5.0, gt=0)
    # A gateway silent for this long is presumed dead and its stations disconnected.
    gateway_timeout: float = Field(default=30.0, gt=0)
    # How often a worker looks for dead gateways and unfinished NotifyEvent reports.
    maintenance_interval: float = Field(default=10.0, gt=0)
    # A multi-part NotifyEvent report unfinished for this long is recorded as a gap.
    event_report_timeout: float = Field(default=300.0, gt=0)

    # Commands.
    command_timeout: float = Field(default=30.0, gt=0)
    command_timeout_max: float = Field(default=300.0, gt=0)

    # Bus consumers: handlers in flight per queue, and the most messages one transaction takes.
    consumer_prefetch: int = Field(default=64, ge=1)
    # Seconds a publish (or binding) may wait for the broker before it counts as failed.
    publish_timeout: float = Field(default=10.0, gt=0)
    consumer_concurrency: int = Field(default=4, ge=1)
    consumer_batch: int = Field(default=200, ge=1)
    # Under load, a worker forms a queue's batches at most once per this many seconds, so that
    # many small transactions become few large ones; a message after a quiet spell is taken
    # at once. Statuses and alerts were answered already; boots wait at most this long.
    consumer_linger: float = Field(default=0.05, ge=0, le=5)
    # The same in standalone mode, where a station's answer waits for its message's transaction
    # (no broker holds the message meanwhile), so the linger adds to every answer.
    standalone_consumer_linger: float = Field(default=0.01, ge=0, le=5)
    # Under load, a gateway publishes each kind of station message at most once per this many
    # seconds, so that one bus message carries many stations' messages; a message after a
    # quiet spell goes at once. Stations wait at most this long more for their answer.
    publish_linger: float = Field(default=0.005, ge=0, le=1)
    database_pool_size: int = Field(default=24, ge=1)
    max_redeliveries: int = Field(default=5, ge=1)

    # Station admission (OCPP 2.0.1 security profiles): the profile of this gateway's listener.
    # 0: no authentication (development); 1: Basic auth; 2: TLS + Basic auth; 3: mutual TLS.
    security_profile: int = Field(default=0, ge=0, le=3)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # CA bundle that client certificates must chain to (profile 3).
    tls_ca_file: str | None = None
    # How long a gateway trusts the credentials it looked up (changes are also broadcast).
    credentials_cache_ttl: float = Field(default=60.0, gt=0)
    # Failed password checks per station before further checks are refused for a while.
    auth_failure_limit: int = Field(default=5, ge=1)
    auth_lockout: float = Field(default=60.0, gt=0)

    # Input limits.
    max_connections: int = Field(default=20000, ge=1)
    # Connections admitted whose registration is not yet recorded (or, if more, as many as
    # complete in 10 s at the recent rate: see pacing.py); more get 503 + Retry-After. Bounds
    # how many boots queue behind them, so it must suit the registration rate: the last
    # admitted waits about this many / that rate. A refusal costs a handshake and a retry, so
    # too low a bound costs storm time (ADR 0020).
    max_admissions_in_progress: int = Field(default=10000, ge=1)
    overload_retry_after: int = Field(default=2, ge=1)
    # Token bucket per station: sustained CALLs per second and burst.
    station_rate: float = Field(default=20.0, gt=0)
    station_burst: int = Field(default=40, ge=1)
    # CALLs refused for rate before the socket is closed.
    station_abuse_limit: int = Field(default=100, ge=1)
    # Commands waiting behind the one in flight, per station.
    max_queued_commands: int = Field(default=16, ge=0)

    # Operator API bearer tokens given in the environment (comma-separated), besides those
    # issued with `csms tokens add`. With no token anywhere the API is open (development).
    api_tokens: str = ""
    api_read_tokens: str = ""

    log_level: str = "INFO"
    log_json: bool = False

    @property
    def standalone(self) -> bool:
        return self.amqp_url is None

    @model_validator(mode="after")
    def _beats_fit_the_timeout(self) -> Self:
        # A gateway beats once per flush interval; a timeout shorter than two beats would
        # declare live gateways dead between them.
        if self.gateway_timeout < 2 * self.seen_flush_interval:
            raise ValueError(
                "CSMS_GATEWAY_TIMEOUT must be at least twice CSMS_SEEN_FLUSH_INTERVAL "
                f"({self.gateway_timeout} < 2 x {self.seen_flush_interval})"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
