"""The bus contract (csms.bus.base.Bus), run against both implementations.

Every test runs once on `MemoryBus` and once on `AmqpBus` against the real RabbitMQ. The AMQP
runs use a virtual host of this module's own: the run-wide `amqp_url` vhost is shared with the
distributed end-to-end deployment, whose workers consume the same durable work queues (and
declare them with another delivery limit).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import aio_pika
import pytest

from csms.bus import topology
from csms.bus.amqp import AmqpBus
from csms.bus.base import Bus
from csms.bus.memory import MemoryBus
from csms.bus.message import Body, BusError, BusMessage, Outcome, RequestTimeout, Unroutable
from tests.support import services

pytestmark = pytest.mark.services

MAX_REDELIVERIES = 2
STATUS_KEY = topology.ocpp_key("StatusNotification")
STATUS_QUEUE = topology.STATUS_QUEUE.name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


class Harness:
    """A connected bus plus what only the implementation can tell about its queues."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def purge(self, queue: str) -> None:
        """Drop messages earlier tests left in a durable queue."""

    async def dead_letter(self, message_id: str) -> BusMessage:
        """The dead-lettered message with this id (waits for it to arrive)."""
        raise NotImplementedError

    async def left_in_queue(self, queue: str) -> int:
        """Close the bus; count what the next consumer of `queue` would be handed."""
        raise NotImplementedError

    async def close(self) -> None:
        await self.bus.close()


class MemoryHarness(Harness):
    bus: MemoryBus

    async def dead_letter(self, message_id: str) -> BusMessage:
        await wait_until(lambda: any(m.message_id == message_id for m in self.bus.dead_letters))
        return next(m for m in self.bus.dead_letters if m.message_id == message_id)

    async def left_in_queue(self, queue: str) -> int:
        # In-process queues die with the bus; an unacked publish never returns (checked by
        # the callers), so nothing can be left over.
        await self.bus.close()
        return 0


class AmqpHarness(Harness):
    bus: AmqpBus

    def __init__(self, bus: AmqpBus, url: str) -> None:
        super().__init__(bus)
        self.url = url

    async def purge(self, queue: str) -> None:
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()
            await (await channel.get_queue(queue)).purge()

    async def dead_letter(self, message_id: str) -> BusMessage:
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()
            dead = await channel.get_queue(topology.DEAD_LETTER_QUEUE)
            async with asyncio.timeout(15):
                while True:
                    incoming = await dead.get(no_ack=True, fail=False)
                    if incoming is None:
                        await asyncio.sleep(0.1)
                    elif incoming.message_id == message_id:
                        return BusMessage(
                            body=BusMessage.decode_body(incoming.body),
                            type=incoming.type or "",
                            message_id=incoming.message_id,
                        )

    async def left_in_queue(self, queue: str) -> int:
        # Closing the connection returns every unacked delivery to the queue.
        await self.bus.close()
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            count = declared.declaration_result.message_count
            assert count is not None
            return count


@pytest.fixture(scope="module")
def contract_amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host for this module alone (fails when RabbitMQ is missing)."""
    name = services.unique_name("csms-bus-contract")
    url = services.create_vhost(name)
    yield url
    services.delete_vhost(name)


@pytest.fixture(params=["memory", "amqp"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A connected bus of each kind, closed after the test."""
    under_test: Harness
    if request.param == "memory":
        under_test = MemoryHarness(MemoryBus(max_redeliveries=MAX_REDELIVERIES))
    else:
        url = request.getfixturevalue("contract_amqp_url")
        under_test = AmqpHarness(AmqpBus(url, max_redeliveries=MAX_REDELIVERIES), url)
    await under_test.bus.connect()
    try:
        yield under_test
    finally:
        await under_test.close()


@pytest.fixture
async def amqp_bus(contract_amqp_url: str) -> AsyncIterator[AmqpBus]:
    """A connected AmqpBus alone, for what only RabbitMQ can show."""
    bus = AmqpBus(contract_amqp_url, max_redeliveries=MAX_REDELIVERIES)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def work_queues(harness: Harness) -> Bus:
    """The bus with its work queues declared and the status queue empty."""
    await harness.bus.declare_work_queues()
    await harness.purge(STATUS_QUEUE)
    return harness.bus


def status_message() -> BusMessage:
    return BusMessage(body={"stationId": unique("S"), "evseId": 1}, type=STATUS_KEY)


async def test_event_reaches_the_consumer_of_its_work_queue(work_queues: Bus) -> None:
    """A StatusNotification event arrives on `events.status` with body, id and type intact."""
    received: list[BusMessage] = []

    async def handler(message: BusMessage) -> None:
        received.append(message)

    await work_queues.consume(STATUS_QUEUE, handler)
    sent = status_message()
    await asyncio.wait_for(work_queues.publish(topology.EVENTS_EXCHANGE, STATUS_KEY, sent), 5)

    await wait_until(lambda: len(received) == 1)
    (message,) = received
    assert message.body == sent.body
    assert message.message_id == sent.message_id
    assert message.type == STATUS_KEY
    assert message.redelivered is False


async def test_failed_handler_is_retried_and_a_later_success_acks(
    harness: Harness, work_queues: Bus
) -> None:
    """A handler that fails once sees the message again (redelivered) and its success acks it."""
    # What the handler saw at each attempt: (message id, redelivered, body).
    attempts: list[tuple[str, bool, Body]] = []

    async def handler(message: BusMessage) -> None:
        attempts.append((message.message_id, message.redelivered, message.body))
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")

    await work_queues.consume(STATUS_QUEUE, handler)
    sent = status_message()
    # MemoryBus: returns only after the ack. RabbitMQ: returns once the broker confirmed.
    await asyncio.wait_for(work_queues.publish(topology.EVENTS_EXCHANGE, STATUS_KEY, sent), 10)

    await wait_until(lambda: len(attempts) >= 2)
    await asyncio.sleep(0.3)  # room for the ack to reach the broker
    assert attempts == [(sent.message_id, False, sent.body), (sent.message_id, True, sent.body)]
    assert await harness.left_in_queue(STATUS_QUEUE) == 0


async def test_always_failing_handler_ends_in_the_dead_letters(
    harness: Harness, work_queues: Bus
) -> None:
    """After the bounded redeliveries the message is dead-lettered, body and id intact."""
    attempts: list[BusMessage] = []

    async def handler(message: BusMessage) -> None:
        attempts.append(message)
        raise RuntimeError("poison message")

    await work_queues.consume(STATUS_QUEUE, handler)
    sent = status_message()
    publish = work_queues.publish(topology.EVENTS_EXCHANGE, STATUS_KEY, sent)
    if isinstance(work_queues, MemoryBus):
        # No broker holds the message: the publisher learns that it was not stored.
        with pytest.raises(BusError):
            await asyncio.wait_for(publish, 10)
    else:
        await asyncio.wait_for(publish, 10)

    dead = await harness.dead_letter(sent.message_id)
    assert dead.body == sent.body
    assert dead.type == STATUS_KEY
    assert len(attempts) == MAX_REDELIVERIES + 1
    assert {m.message_id for m in attempts} == {sent.message_id}
    assert await harness.left_in_queue(STATUS_QUEUE) == 0


async def test_mandatory_command_for_a_gateway_that_is_gone_is_unroutable(
    harness: Harness,
) -> None:
    """No inbox of that name: a mandatory publish raises, a plain one is dropped silently."""
    bus = harness.bus
    gone = topology.gateway_queue(unique("gone"))
    message = BusMessage(body={"stationId": unique("S1")}, type=topology.COMMAND)
    with pytest.raises(Unroutable):
        await bus.publish(topology.COMMANDS_EXCHANGE, gone, message, mandatory=True)
    await bus.publish(topology.COMMANDS_EXCHANGE, gone, message)


async def test_request_gets_the_reply_of_the_inbox_it_is_addressed_to(
    harness: Harness,
) -> None:
    """A command routed by the inbox's name reaches that inbox, whose handler answers it."""
    bus = harness.bus
    station = unique("S1")
    received: list[BusMessage] = []

    async def handler(message: BusMessage) -> Body:
        received.append(message)
        return {"status": "Accepted", "echo": message.body["action"]}

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)
    command = BusMessage(body={"stationId": station, "action": "Reset"}, type=topology.COMMAND)
    reply = await bus.request(topology.COMMANDS_EXCHANGE, inbox, command, timeout=5, mandatory=True)

    assert reply == {"status": "Accepted", "echo": "Reset"}
    assert [(m.body, m.type, m.message_id) for m in received] == [
        (command.body, topology.COMMAND, command.message_id)
    ]


async def test_request_nobody_answers_times_out(harness: Harness) -> None:
    """The inbox takes the command but returns no reply: RequestTimeout, on time."""
    bus = harness.bus
    station = unique("S1")
    received: list[BusMessage] = []

    async def handler(message: BusMessage) -> None:
        received.append(message)

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeout):
        await bus.request(
            topology.COMMANDS_EXCHANGE,
            inbox,
            BusMessage(body={"stationId": station}, type=topology.COMMAND),
            timeout=0.5,
            mandatory=True,
        )
    elapsed = loop.time() - started
    assert 0.45 <= elapsed < 1.5
    assert len(received) == 1


async def test_commands_waiting_on_silent_stations_do_not_hold_up_the_others(
    harness: Harness,
) -> None:
    """Each inbox message is handled on its own: however many commands wait for stations
    that do not answer, a command for another station is handled at once."""
    bus = harness.bus
    answer_silent = asyncio.Event()
    silent_started: list[int] = []

    async def handler(message: BusMessage) -> Body:
        if message.body["silent"]:
            silent_started.append(message.body["n"])
            await answer_silent.wait()
        return {"n": message.body["n"]}

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)

    def command(n: int, silent: bool) -> BusMessage:
        return BusMessage(body={"n": n, "silent": silent}, type=topology.COMMAND)

    waiting = [
        asyncio.create_task(
            bus.request(topology.COMMANDS_EXCHANGE, inbox, command(n, True), timeout=10)
        )
        for n in range(200)
    ]
    try:
        # More than any window of deliveries in flight would hold.
        await wait_until(lambda: len(silent_started) >= 64)
        reply = await bus.request(topology.COMMANDS_EXCHANGE, inbox, command(-1, False), timeout=5)

        assert reply == {"n": -1}
        assert not any(task.done() for task in waiting)
    finally:
        answer_silent.set()
    assert [await task for task in waiting] == [{"n": n} for n in range(200)]


async def test_late_reply_is_dropped_and_does_not_answer_a_later_request(
    harness: Harness,
) -> None:
    """A reply after the requester gave up goes nowhere; the next request gets its own."""
    bus = harness.bus
    replied: list[int] = []

    async def handler(message: BusMessage) -> Body:
        await asyncio.sleep(message.body["delay"])
        replied.append(message.body["n"])
        return {"n": message.body["n"]}

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)

    def command(n: int, delay: float) -> BusMessage:
        return BusMessage(body={"n": n, "delay": delay}, type=topology.COMMAND)

    with pytest.raises(RequestTimeout):
        await bus.request(topology.COMMANDS_EXCHANGE, inbox, command(1, 0.6), timeout=0.2)
    # The late reply to request 1 is sent while request 2 is still waiting for its own.
    reply = await bus.request(topology.COMMANDS_EXCHANGE, inbox, command(2, 0.8), timeout=5)

    assert reply == {"n": 2}
    assert replied == [1, 2]


async def test_a_lingering_consumer_takes_what_arrives_meanwhile_as_one_batch(
    work_queues: Bus,
) -> None:
    """The first message after a quiet spell is handled at once; those published within the
    next linger reach the handler together."""
    batches: list[list[str]] = []

    async def handler(messages: list[BusMessage]) -> list[Outcome]:
        batches.append([m.message_id for m in messages])
        return [None] * len(messages)

    await work_queues.consume_batches(STATUS_QUEUE, handler, max_batch=10, linger=1.0)
    sent = [status_message() for _ in range(3)]
    # Concurrent: an in-process publish returns only once its message was handled.
    publishing = []
    for message in sent:
        publishing.append(
            asyncio.create_task(work_queues.publish(topology.EVENTS_EXCHANGE, STATUS_KEY, message))
        )
        await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*publishing), 10)
    await wait_until(lambda: sum(map(len, batches)) == 3)
    assert batches == [[sent[0].message_id], [m.message_id for m in sent[1:]]]


async def test_after_a_broker_reconnect_the_inbox_is_addressable_again(
    amqp_bus: AmqpBus, contract_amqp_url: str
) -> None:
    """The inbox and its binding are restored when the connection comes back."""
    bus = amqp_bus

    async def handler(message: BusMessage) -> Body:
        return {"held": message.body["stationId"]}

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)
    station = unique("S-held")

    vhost = contract_amqp_url.rsplit("/", 1)[1]
    await asyncio.to_thread(services.close_connections, vhost)

    async def ask() -> Body:
        command = BusMessage(body={"stationId": station}, type=topology.COMMAND)
        return await bus.request(
            topology.COMMANDS_EXCHANGE, inbox, command, timeout=5, mandatory=True
        )

    async with asyncio.timeout(30):
        while True:
            try:
                assert await ask() == {"held": station}
                break
            except BusError:  # not yet reconnected, or not yet rebound
                await asyncio.sleep(0.2)


async def test_requests_for_one_inbox_in_the_same_round_travel_as_one_message(
    amqp_bus: AmqpBus, contract_amqp_url: str
) -> None:
    """Requests made in one round of the event loop for the same inbox go as one AMQP
    message; the inbox handles each on its own and each requester gets its own reply. A
    request made later goes on its own, as a plain message."""
    bus = amqp_bus
    handled: list[str] = []

    async def handler(message: BusMessage) -> Body:
        handled.append(message.message_id)
        return {"n": message.body["n"], "correlation": message.correlation_id}

    inbox = unique("gateway.contract")
    await bus.open_inbox(inbox, handler)
    async with await aio_pika.connect(contract_amqp_url) as connection:
        # A second queue bound with the inbox's key sees every AMQP message sent to it.
        channel = await connection.channel()
        spy = await channel.declare_queue(exclusive=True)
        await spy.bind(topology.COMMANDS_EXCHANGE, inbox)

        def command(n: int) -> BusMessage:
            return BusMessage(body={"n": n}, type=topology.COMMAND, ttl=30)

        commands = [command(n) for n in range(5)]
        replies = await asyncio.gather(
            *(
                bus.request(topology.COMMANDS_EXCHANGE, inbox, c, timeout=5, mandatory=True)
                for c in commands
            )
        )
        later = command(5)
        last = await bus.request(topology.COMMANDS_EXCHANGE, inbox, later, timeout=5)

        assert replies == [{"n": n, "correlation": c.message_id} for n, c in enumerate(commands)]
        assert last == {"n": 5, "correlation": later.message_id}
        assert sorted(handled) == sorted(c.message_id for c in [*commands, later])
        seen = [await spy.get(no_ack=True, timeout=5) for _ in range(2)]
        assert await spy.get(no_ack=True, fail=False) is None
        assert [m.type for m in seen] == ["bus.batch", topology.COMMAND]
        assert seen[0].expiration is not None
        assert BusMessage.decode_body(seen[1].body) == {"n": 5}


async def test_a_request_batch_for_a_gateway_that_is_gone_is_unroutable_for_each(
    amqp_bus: AmqpBus,
) -> None:
    """Messages that travel together share the broker's answer: each publish raises."""
    gone = topology.gateway_queue(unique("gone"))
    outcomes = await asyncio.gather(
        *(
            amqp_bus.publish(
                topology.COMMANDS_EXCHANGE,
                gone,
                BusMessage(body={"n": n}, type=topology.COMMAND),
                mandatory=True,
            )
            for n in range(3)
        ),
        return_exceptions=True,
    )

    assert [type(outcome) for outcome in outcomes] == [Unroutable] * 3
