"""TLS for security profiles 2 and 3 (OCPP 2.0.1 Part 2 A00: TLS 1.2 or newer, its cipher
suites, no compression; profile 3 requires a client certificate chaining to the CSMS's CA)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from csms.config import Settings

# The suites OCPP names for TLS 1.2, plus their ECDHE-RSA twins for RSA server keys.
# TLS 1.3 suites are fixed by the protocol and all acceptable.
OCPP_TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    ]
)


class TlsMisconfigured(ValueError):
    pass


def server_context(
    settings: Settings, on_refusal: Callable[[ssl.SSLError], None] | None = None
) -> ssl.SSLContext | None:
    """The listener's TLS context, or None for profiles 0 and 1 (plain ws://).

    `on_refusal` hears of every failed TLS handshake (old protocol version, unknown, expired or
    missing client certificate): they end before any HTTP, where nothing else would see them.
    """
    if settings.security_profile < 2:
        return None
    if not settings.tls_cert_file or not settings.tls_key_file:
        raise TlsMisconfigured("security profiles 2 and 3 need CSMS_TLS_CERT_FILE and _KEY_FILE")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(OCPP_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.security_profile == 3:
        if not settings.tls_ca_file:
            raise TlsMisconfigured("security profile 3 needs CSMS_TLS_CA_FILE")
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(settings.tls_ca_file)
    if on_refusal is not None:
        context.sslobject_class = _reporting_ssl_object(on_refusal)
    return context


def _reporting_ssl_object(on_refusal: Callable[[ssl.SSLError], None]) -> type[ssl.SSLObject]:
    class ReportingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                on_refusal(exc)
                raise

    return ReportingSSLObject


def common_name(peer_certificate: object) -> str | None:
    """The subject CN of a verified peer certificate (as returned by getpeercert())."""
    if not isinstance(peer_certificate, dict):
        return None
    for rdn in peer_certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
