"""The WebSocket endpoint `ws://HOST:PORT/ocpp/<stationId>` (OCPP 2.0.1 Part 4, sections 3, 5)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
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
from csms_gateway.teardown import forget_handshake, free_when_closed
from csms_gateway.tls import common_name, server_context

log = logging.getLogger(__name__)

OCPP_SUBPROTOCOL = Subprotocol("ocpp2.0.1")
# Close code when the station offers no subprotocol we speak (RFC 6455: protocol error).
CLOSE_NO_SUBPROTOCOL = 1002
CLOSE_GOING_AWAY = 1001


class OcppServer:
    def __init__(self, relay: Relay, admission: Admission, settings: Settings) -> None:
        self._relay = relay
        self._admission = admission
        self._settings = settings
        self._server: Server | None = None
        self._ssl = server_context(settings, on_refusal=admission.refuse_tls)
        self._window = AdmissionWindow(
            settings.max_admissions_in_progress,
            settings.handshake_timeout,
            min_retry_after=settings.overload_retry_after,
        )
        # Connection -> its admission token, released once its registration is recorded.
        # (Weak: a handshake abandoned after admission leaves nothing behind.)
        self._keepalive = Keepalive(relay.sessions, settings.ping_interval, settings.ping_timeout)
        # Bound once, shared by every session (not two method objects per connection).
        self._on_call = relay.on_call
        self._on_traffic = relay.seen.note
        self._tokens: weakref.WeakKeyDictionary[ServerConnection, int] = weakref.WeakKeyDictionary()

    @property
    def port(self) -> int:
        assert self._server is not None, "start first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self._settings.ocpp_host,
            self._settings.ocpp_port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            # permessage-deflate (required of a CSMS, Part 4 section 3.3) with small windows:
            # OCPP messages are small, and zlib's state is most of a socket's memory. The
            # smallest messages go uncompressed (see deflate.py).
            compression=None,
            extensions=[
                SmallPlainDeflateFactory(
                    server_max_window_bits=self._settings.deflate_window_bits,
                    client_max_window_bits=self._settings.deflate_window_bits,
                    compress_settings={"memLevel": self._settings.deflate_mem_level},
                    plain_below=self._settings.deflate_plain_below,
                )
            ],
            # Reconnect storms: a deep accept queue, and time for handshakes waiting their turn.
            backlog=self._settings.listen_backlog,
            open_timeout=self._settings.handshake_timeout,
            # One keep-alive task for the gateway, not one per socket (see keepalive.py).
            ping_interval=None,
            ping_timeout=None,
            max_size=self._settings.max_frame_bytes,
            server_header=None,
            ssl=self._ssl,
        )
        self._keepalive.start()
        log.info("OCPP endpoint listening on port %d", self.port)

    async def stop(self) -> None:
        await self._keepalive.stop()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Everything that refuses a connection is decided here, before the upgrade."""
        free_when_closed(connection)
        if request.path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if request.path == "/metrics":
            return connection.respond(HTTPStatus.OK, self._metrics())
        try:
            station_id = station_id_from_path(request.path)
        except BadPath as exc:
            return connection.respond(HTTPStatus.NOT_FOUND, f"{exc}\n")
        except BadIdentity as exc:
            self._admission.refusals["BadIdentity"] += 1
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if len(self._relay.sessions) >= self._settings.max_connections:
            self._admission.refusals["TooManyConnections"] += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "gateway full, try later\n")
        refusal = await self._admission.admit(
            station_id,
            request.headers.get("Authorization"),
            common_name(connection.transport.get_extra_info("peercert")),
        )
        if refusal is None:
            token = self._window.try_admit()
            if token is None:
                self._admission.refusals["Overloaded"] += 1
                response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy, retry later\n")
                response.headers["Retry-After"] = str(self._window.retry_after())
                return response
            self._tokens[connection] = token
            return None
        response = connection.respond(refusal.status, f"{refusal.reason}\n")
        if refusal.basic_challenge:
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        return response

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

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # None completes the handshake without a subprotocol; the handler then closes at once.
        return OCPP_SUBPROTOCOL if OCPP_SUBPROTOCOL in subprotocols else None

    async def _handle(self, websocket: ServerConnection) -> None:
        token = self._tokens.pop(websocket, None)
        try:
            await self._serve(websocket, token)
        finally:
            self._window.release(token)

    async def _serve(self, websocket: ServerConnection, token: int | None) -> None:
        if websocket.subprotocol != OCPP_SUBPROTOCOL:
            await websocket.close(CLOSE_NO_SUBPROTOCOL, "subprotocol ocpp2.0.1 required")
            return
        station_id = station_id_from_path(websocket.request.path if websocket.request else "")
        forget_handshake(websocket)
        session = StationSession(
            websocket,
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
            await websocket.close(1011, "CSMS unavailable")
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
