"""The WebSocket endpoint `ws://HOST:PORT/ocpp/<stationId>` (OCPP 2.0.1 Part 4, sections 3, 5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.bus.message import BusError
from csms.config import Settings
from csms.ocpp.identity import BadIdentity, BadPath, station_id_from_path
from csms_gateway.admission import Admission
from csms_gateway.deflate import SmallPlainDeflateFactory
from csms_gateway.keepalive import Keepalive
from csms_gateway.pacing import AdmissionWindow
from csms_gateway.relay import Relay
from csms_gateway.session import RateLimit, StationSession
from csms_gateway.station_socket import SocketOptions, StationSocket
from csms_gateway.tls import common_name, server_context

log = logging.getLogger(__name__)

OCPP_SUBPROTOCOL = Subprotocol("ocpp2.0.1")
# Close code when the station offers no subprotocol we speak (RFC 6455: protocol error).
CLOSE_NO_SUBPROTOCOL = 1002
CLOSE_GOING_AWAY = 1001
# How long a stopping gateway waits for its stations' closing handshakes.
_STOP_TIMEOUT = 5.0


class OcppServer:
    def __init__(self, relay: Relay, admission: Admission, settings: Settings) -> None:
        self._relay = relay
        self._admission = admission
        self._settings = settings
        self._server: asyncio.Server | None = None
        self._ssl = server_context(settings, on_refusal=admission.refuse_tls)
        self._window = AdmissionWindow(
            settings.max_admissions_in_progress,
            settings.handshake_timeout,
            min_retry_after=settings.overload_retry_after,
        )
        self._keepalive = Keepalive(relay.sessions, settings.ping_interval, settings.ping_timeout)
        # Bound once, shared by every session (not two method objects per connection).
        self._on_call = relay.on_call
        self._on_traffic = relay.seen.note
        # Each connection's task (from its opening request until it is closed), with its socket.
        self._connections: dict[asyncio.Task[None], StationSocket] = {}

    @property
    def port(self) -> int:
        assert self._server is not None, "start first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        options = SocketOptions(
            on_request=self._on_request,
            select_subprotocol=_select_subprotocol,
            # permessage-deflate (required of a CSMS, Part 4 section 3.3) with small windows:
            # OCPP messages are small, and zlib's state is most of a socket's memory. The
            # smallest messages go uncompressed (see deflate.py).
            extensions=[
                SmallPlainDeflateFactory(
                    server_max_window_bits=self._settings.deflate_window_bits,
                    client_max_window_bits=self._settings.deflate_window_bits,
                    compress_settings={"memLevel": self._settings.deflate_mem_level},
                    plain_below=self._settings.deflate_plain_below,
                )
            ],
            max_size=self._settings.max_frame_bytes,
            # Reconnect storms: time for handshakes waiting their turn.
            open_timeout=self._settings.handshake_timeout,
        )
        self._server = await asyncio.get_running_loop().create_server(
            lambda: StationSocket(options),
            self._settings.ocpp_host,
            self._settings.ocpp_port,
            # Reconnect storms: a deep accept queue.
            backlog=self._settings.listen_backlog,
            ssl=self._ssl,
            ssl_handshake_timeout=self._settings.handshake_timeout if self._ssl else None,
        )
        self._keepalive.start()
        log.info("OCPP endpoint listening on port %d", self.port)

    async def stop(self) -> None:
        await self._keepalive.stop()
        if self._server is None:
            return
        self._server.close()
        for socket in self._connections.values():
            if socket.is_open:
                socket.start_close(CLOSE_GOING_AWAY, "gateway stopping")
            else:
                socket.abort()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=_STOP_TIMEOUT)
        for task, socket in list(self._connections.items()):
            socket.abort()
            task.cancel()
        await self._server.wait_closed()

    def _on_request(self, socket: StationSocket, request: Request) -> None:
        task = asyncio.create_task(self._connection(socket, request))
        self._connections[task] = socket
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._connections.pop(task, None)

    async def _connection(self, socket: StationSocket, request: Request) -> None:
        path = request.path
        token: int | None = None
        try:
            try:
                response, token = await self._process_request(socket, request)
            except Exception:
                log.exception("opening request for %s failed", path)
                response = socket.reject(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "CSMS failed to process the request\n"
                )
            if response is not None:
                socket.respond(response)
                return
            accepted = socket.accept(request)
            # Nothing reads the request's headers again: not kept for the connection's life.
            del request
            if accepted:
                await self._serve(socket, path, token)
        except Exception:
            log.exception("station connection %s failed", path)
            socket.abort()
        finally:
            self._window.release(token)

    async def _process_request(
        self, socket: StationSocket, request: Request
    ) -> tuple[Response | None, int | None]:
        """Everything that refuses a connection is decided here, before the upgrade: a
        response refusing it, or None and the connection's admission token."""
        if request.path == "/health":
            return socket.reject(HTTPStatus.OK, "ok\n"), None
        if request.path == "/metrics":
            return socket.reject(HTTPStatus.OK, self._metrics()), None
        try:
            station_id = station_id_from_path(request.path)
        except BadPath as exc:
            return socket.reject(HTTPStatus.NOT_FOUND, f"{exc}\n"), None
        except BadIdentity as exc:
            self._admission.refusals["BadIdentity"] += 1
            return socket.reject(HTTPStatus.BAD_REQUEST, f"{exc}\n"), None
        if len(self._relay.sessions) >= self._settings.max_connections:
            self._admission.refusals["TooManyConnections"] += 1
            return socket.reject(HTTPStatus.SERVICE_UNAVAILABLE, "gateway full, try later\n"), None
        refusal = await self._admission.admit(
            station_id,
            request.headers.get("Authorization"),
            common_name(socket.peer_certificate()),
        )
        if refusal is None:
            token = self._window.try_admit()
            if token is None:
                self._admission.refusals["Overloaded"] += 1
                response = socket.reject(HTTPStatus.SERVICE_UNAVAILABLE, "busy, retry later\n")
                response.headers["Retry-After"] = str(self._window.retry_after())
                return response, None
            return None, token
        response = socket.reject(refusal.status, f"{refusal.reason}\n")
        if refusal.basic_challenge:
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        return response, None

    def _metrics(self) -> str:
        lines = [
            "# TYPE csms_gateway_connections gauge",
            f"csms_gateway_connections {len(self._relay.sessions)}",
            "# TYPE csms_gateway_admissions_in_progress gauge",
            f"csms_gateway_admissions_in_progress {self._window.in_progress()}",
            "# TYPE csms_gateway_refusals_total counter",
        ]
        lines += [
            f'csms_gateway_refusals_total{{reason="{reason}"}} {count}'
            for reason, count in sorted(self._admission.refusals.items())
        ]
        return "\n".join(lines) + "\n"

    async def _serve(self, socket: StationSocket, path: str, token: int | None) -> None:
        if socket.subprotocol != OCPP_SUBPROTOCOL:
            await socket.close(CLOSE_NO_SUBPROTOCOL, "subprotocol ocpp2.0.1 required")
            return
        station_id = station_id_from_path(path)
        session = StationSession(
            socket,
            station_id,
            on_call=self._on_call,
            on_traffic=self._on_traffic,
            rate_limit=RateLimit(
                self._settings.station_rate,
                self._settings.station_burst,
                self._settings.station_abuse_limit,
            ),
        )
        try:
            await self._relay.attach(session)
        except Exception as exc:
            if isinstance(exc, BusError):
                # Overload or a broker outage: one line, not a traceback per station of a storm.
                log.warning("station %s could not be attached (%s); closing", station_id, exc)
            else:
                log.exception("station %s could not be attached; closing", station_id)
            await socket.close(1011, "CSMS unavailable")
            # Half attached is still attached: leave nothing behind (session, binding).
            await asyncio.shield(self._relay.detach(session))
            return
        log.info("station %s connected (%s)", station_id, session.connection_id)
        if session.registration is not None:
            session.registration.add_done_callback(lambda _: self._window.release(token))
        try:
            await session.run()
        finally:
            await asyncio.shield(self._relay.detach(session))
            log.info("station %s disconnected (%s)", station_id, session.connection_id)


def _select_subprotocol(
    _protocol: object, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    # None completes the handshake without a subprotocol; the connection then closes at once.
    return OCPP_SUBPROTOCOL if OCPP_SUBPROTOCOL in subprotocols else None
