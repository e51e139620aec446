"""`csms simulate` flags: parsing, the configuration they make, and the printed summary."""

from __future__ import annotations

import argparse

import pytest

from csms.simulator.cli import add_arguments, config_from, format_summary, run
from csms.simulator.config import SimulationConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    config = config_from(parse())
    assert config == SimulationConfig(url="ws://127.0.0.1:9000/ocpp")
    assert (config.stations, config.evses, config.connectors) == (1, 2, 1)
    assert (config.connect_rate, config.duration, config.message_rate) == (500.0, 0.0, 0.0)
    assert config.heartbeat_interval is None
    assert config.compression


def test_every_flag() -> None:
    args = parse(
        *("--url", "ws://h:1/ocpp,ws://h:2/ocpp/", "-n", "12", "--prefix", "LOAD-"),
        *("--evses", "3", "--connectors", "2", "--connect-rate", "50", "--duration", "5"),
        *("--rate", "0.5", "--heartbeat-interval", "10", "--password", "pw"),
        *("--source-addresses", "3", "--call-timeout", "4", "--boot-timeout", "9"),
        *("--no-compression", "--json"),
    )
    config = config_from(args)
    assert args.json
    assert config.urls == ("ws://h:1/ocpp", "ws://h:2/ocpp")
    assert config.station_id(1) == "LOAD-01"
    assert config.station_url(1) == "ws://h:1/ocpp/LOAD-01"
    assert config.station_url(2) == "ws://h:2/ocpp/LOAD-02"
    assert (config.evses, config.connectors, config.connect_rate) == (3, 2, 50.0)
    assert (config.duration, config.message_rate, config.heartbeat_interval) == (5.0, 0.5, 10.0)
    assert config.password == "pw"
    assert config.source_addresses == ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    assert config.source_address(4) == "127.0.0.1"
    assert (config.call_timeout, config.boot_timeout, config.compression) == (4.0, 9.0, False)


def test_source_addresses_as_a_list() -> None:
    assert parse("--source-addresses", "127.0.0.5, 127.0.0.9").source_addresses == (
        "127.0.0.5",
        "127.0.0.9",
    )


@pytest.mark.parametrize("value", ["0", "300", "localhost", "127.0.0.1,nope"])
def test_bad_source_addresses(value: str) -> None:
    with pytest.raises(SystemExit):
        parse("--source-addresses", value)


@pytest.mark.parametrize(
    "argv",
    [
        ("--url", "http://h/ocpp"),
        ("-n", "0"),
        ("--connect-rate", "0"),
        ("--rate", "-1"),
        ("--prefix", "X" * 48, "-n", "5"),
    ],
)
def test_bad_configuration_exits_2(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(parse(*argv)) == 2
    assert "csms simulate:" in capsys.readouterr().err


def test_summary_table() -> None:
    text = format_summary(
        {
            "stations": 2,
            "time_to_all_booted_s": None,
            "latency_ms": {"count": 3, "p50": 1.5},
            "latency_by_action_ms": {"Heartbeat": {"count": 3, "p50": 1.5}},
            "errors": {},
        }
    )
    assert text.splitlines() == [
        "stations              2",
        "time_to_all_booted_s  -",
        "latency_ms",
        "  count               3",
        "  p50                 1.5",
        "latency_by_action_ms",
        "  Heartbeat           count 3  p50 1.5",
        "errors                -",
    ]
