"""What to simulate: one frozen value shared read-only by every simulated station."""

from __future__ import annotations

from dataclasses import dataclass

# OCPP 2.0.1 Part 4, section 3.1.1 (as enforced by the gateway): identities up to 48 characters.
MAX_IDENTITY_LENGTH = 48


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """A simulation run.

    `url` is the CSMS's OCPP base URL (a station connects to `<url>/<stationId>`); several
    base URLs separated by commas spread the stations round-robin over several gateways.
    Station ids are `id_prefix` plus a zero-padded number from 1 to `stations`.
    """

    url: str
    stations: int = 1
    id_prefix: str = "SIM"
    evses: int = 2
    connectors: int = 1
    # New connections per second: a real fleet does not reconnect all at once either.
    connect_rate: float = 500.0
    # Seconds to keep running once every station booted; 0 stops after boot and statuses.
    duration: float = 0.0
    # StatusNotification + NotifyEvent messages per second per station, on top of heartbeats.
    message_rate: float = 0.0
    # Heartbeat period in seconds; None uses the interval of the station's Accepted boot.
    heartbeat_interval: float | None = None
    # With a password every station sends `Authorization: Basic base64(<id>:<password>)`.
    password: str | None = None
    # Local addresses to bind client sockets to, round-robin: each address has its own
    # ephemeral port range, so more addresses allow more than ~28k sockets to one server.
    source_addresses: tuple[str, ...] = ()
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    # Seconds a station waits for the answer to one of its CALLs (and for a handshake).
    call_timeout: float = 30.0
    # Seconds, after the last station was started, to wait for every station to boot.
    boot_timeout: float = 60.0
    compression: bool = True

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("url is required")
        for url in self.urls:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"url must start with ws:// or wss://, not {url!r}")
        if self.stations < 1 or self.evses < 1 or self.connectors < 1:
            raise ValueError("stations, evses and connectors must be at least 1")
        if self.connect_rate <= 0:
            raise ValueError("connect_rate must be positive")
        if min(self.duration, self.message_rate, self.boot_timeout) < 0:
            raise ValueError("duration, message_rate and boot_timeout must not be negative")
        if self.heartbeat_interval is not None and self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.call_timeout <= 0:
            raise ValueError("call_timeout must be positive")
        if len(self.station_id(self.stations)) > MAX_IDENTITY_LENGTH:
            raise ValueError(f"station ids must be at most {MAX_IDENTITY_LENGTH} characters")

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(part.strip().rstrip("/") for part in self.url.split(",") if part.strip())

    def station_id(self, number: int) -> str:
        """The identity of station `number` (1-based), padded so that ids sort by number."""
        return f"{self.id_prefix}{number:0{len(str(self.stations))}d}"

    def station_url(self, number: int) -> str:
        urls = self.urls
        return f"{urls[(number - 1) % len(urls)]}/{self.station_id(number)}"

    def source_address(self, number: int) -> str | None:
        if not self.source_addresses:
            return None
        return self.source_addresses[(number - 1) % len(self.source_addresses)]
