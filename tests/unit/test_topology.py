"""Bus names and the AMQP topic matching the in-process bus routes with."""

from __future__ import annotations

from collections import Counter

import pytest

from csms.bus import topology
from csms.bus.topology import ALERTS_QUEUE, WORK_QUEUES, ocpp_key, topic_matches


@pytest.mark.parametrize(
    ("pattern", "routing_key"),
    [
        ("ocpp.StatusNotification", "ocpp.StatusNotification"),
        ("ocpp.*", "ocpp.Heartbeat"),
        ("*.connected", "station.connected"),
        ("*.*", "station.seen"),
        ("ocpp.#", "ocpp.StatusNotification"),
        ("ocpp.#", "ocpp"),
        ("ocpp.#", "ocpp.a.b.c"),
        ("#", "station.seen"),
        ("#", "one"),
        ("#.seen", "station.seen"),
        ("#.seen", "seen"),
        ("a.#.z", "a.z"),
        ("a.#.z", "a.b.c.z"),
        ("a.*.#", "a.b"),
        ("#.*", "a"),
    ],
)
def test_topic_patterns_that_match(pattern: str, routing_key: str) -> None:
    assert topic_matches(pattern, routing_key)


@pytest.mark.parametrize(
    ("pattern", "routing_key"),
    [
        ("ocpp.StatusNotification", "ocpp.NotifyEvent"),
        ("ocpp.StatusNotification", "ocpp.StatusNotification.extra"),
        ("ocpp.*", "ocpp"),
        ("ocpp.*", "ocpp.a.b"),
        ("*", "station.seen"),
        ("*.connected", "station.disconnected"),
        ("ocpp.#", "station.connected"),
        ("#.seen", "station.seen.again"),
        ("a.#.z", "a.b.c"),
        ("a.*.#", "a"),
        ("ocpp.status", "ocpp.Status"),
    ],
)
def test_topic_patterns_that_do_not_match(pattern: str, routing_key: str) -> None:
    assert not topic_matches(pattern, routing_key)


def test_every_work_queue_routing_key_belongs_to_exactly_one_queue() -> None:
    keys = Counter(key for queue in WORK_QUEUES for key in queue.routing_keys)
    assert keys, "the work queues bind no keys"
    assert [key for key, count in keys.items() if count > 1] == []


def test_work_queue_names_are_unique() -> None:
    names = [queue.name for queue in WORK_QUEUES]
    assert len(names) == len(set(names))


def test_every_station_action_and_presence_key_has_a_work_queue() -> None:
    bound = {key for queue in WORK_QUEUES for key in queue.routing_keys}
    assert {
        ocpp_key("BootNotification"),
        ocpp_key("StatusNotification"),
        ocpp_key("NotifyEvent"),
        topology.STATION_CONNECTED,
        topology.STATION_DISCONNECTED,
        topology.STATION_SEEN,
    } <= bound


def test_only_the_alerts_queue_has_a_single_active_consumer() -> None:
    assert ALERTS_QUEUE.single_active_consumer
    assert ALERTS_QUEUE.routing_keys == (ocpp_key("NotifyEvent"),)
    assert [q.name for q in WORK_QUEUES if q.single_active_consumer] == [ALERTS_QUEUE.name]
