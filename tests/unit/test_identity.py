"""The station identity a gateway reads from the WebSocket URL `/ocpp/<identity>`."""

from __future__ import annotations

import pytest

from csms.ocpp.identity import BadIdentity, BadPath, station_id_from_path

EVERY_ALLOWED_CHARACTER = "AZaz09*-_=+|@."


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        ("/ocpp/CS-1", "CS-1"),
        (f"/ocpp/{EVERY_ALLOWED_CHARACTER}", EVERY_ALLOWED_CHARACTER),
        ("/ocpp/ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ("/ocpp/abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz0123456789"),
        ("/ocpp/" + "a" * 48, "a" * 48),
        ("/ocpp/CS%2D1", "CS-1"),
        ("/ocpp/CS%7C1%40site", "CS|1@site"),
        ("/ocpp/" + "%41" * 48, "A" * 48),
        ("/ocpp/CS-1?token=abc&x=y", "CS-1"),
        ("/ocpp/CS-1?", "CS-1"),
    ],
)
def test_accepted_identities(path: str, identity: str) -> None:
    assert station_id_from_path(path) == identity


@pytest.mark.parametrize(
    "path",
    [
        "/ocpp/" + "a" * 49,
        "/ocpp/" + "%41" * 49,
        "/ocpp/CS:1",
        "/ocpp/CS%3A1",
        "/ocpp/CS 1",
        "/ocpp/CS%201",
        "/ocpp/%00",
        "/ocpp/a%2Fb",
        "/ocpp/CS%",
        "/ocpp/Stätion",
        "/ocpp/St%C3%A4tion",
        "/ocpp/CS;1",
    ],
)
def test_bad_identities(path: str) -> None:
    with pytest.raises(BadIdentity):
        station_id_from_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/ocpp",
        "/ocpp/",
        "/ocpp/?id=CS-1",
        "/OCPP/CS-1",
        "/ws/CS-1",
        "/api/ocpp/CS-1",
        "ocpp/CS-1",
        "/ocpp/site/CS-1",
        "/ocpp/CS-1/",
        "/ocpp//CS-1",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(BadPath):
        station_id_from_path(path)
