"""Every exchange, queue and routing-key name of the bus, in one place (see docs/adr)."""

from __future__ import annotations

from dataclasses import dataclass

# Station-initiated traffic, routed by `ocpp.<Action>` and `station.<presence>` keys.
EVENTS_EXCHANGE = "csms.events"
# CSMS-initiated calls and takeovers, routed to one gateway: routing key = its inbox's name.
COMMANDS_EXCHANGE = "csms.commands"
# Registry changes every gateway must hear (cached credentials, evictions): fanout.
CONTROL_EXCHANGE = "csms.control"
# Messages a consumer failed on too often end up here, kept for inspection.
DEAD_LETTER_EXCHANGE = "csms.dead"
DEAD_LETTER_QUEUE = "csms.dead"

STATION_CONNECTED = "station.connected"
STATION_DISCONNECTED = "station.disconnected"
STATION_SEEN = "station.seen"
# A gateway asks for a station's credentials before admitting a connection.
STATION_CREDENTIALS = "station.credentials"

# Message types (the AMQP `type` property) on the commands exchange.
COMMAND = "command"
TAKEOVER = "takeover"
# Message type on the control exchange.
REGISTRY_CHANGED = "registry.changed"


def ocpp_key(action: str) -> str:
    return f"ocpp.{action}"


def gateway_queue(instance_id: str) -> str:
    return f"gateway.{instance_id}"


@dataclass(frozen=True, slots=True)
class WorkQueue:
    """A durable quorum queue consumed by the events-worker."""

    name: str
    routing_keys: tuple[str, ...]
    # One consumer at a time, in publish order: needed where order carries meaning.
    single_active_consumer: bool = False


BOOT_QUEUE = WorkQueue("events.boot", (ocpp_key("BootNotification"),))
STATUS_QUEUE = WorkQueue("events.status", (ocpp_key("StatusNotification"),))
ALERTS_QUEUE = WorkQueue("events.alerts", (ocpp_key("NotifyEvent"),), single_active_consumer=True)
PRESENCE_QUEUE = WorkQueue(
    "events.presence", (STATION_CONNECTED, STATION_DISCONNECTED, STATION_SEEN)
)

REGISTRY_QUEUE = WorkQueue("events.registry", (STATION_CREDENTIALS,))

WORK_QUEUES = (BOOT_QUEUE, STATUS_QUEUE, ALERTS_QUEUE, PRESENCE_QUEUE, REGISTRY_QUEUE)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
