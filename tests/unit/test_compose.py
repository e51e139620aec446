"""Static checks of docker-compose.yml and the Dockerfile against the CLI and the settings.

Nothing here starts a container: the files are parsed and compared with
`csms.cli.build_parser()` and `csms.config.Settings`, so a renamed flag, sub-command or
setting breaks a test instead of a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from csms.cli import build_parser
from csms.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# service name -> the `csms` sub-command it runs
CSMS_SERVICES = {
    "migrate": "migrate",
    "gateway-1": "gateway",
    "gateway-2": "gateway",
    "events-worker": "worker",
    "commands": "api",
}
INFRA_SERVICES = ("rabbitmq", "postgres")
# Services that keep running; `migrate` is a one-shot job judged by its exit code.
LONG_RUNNING = (*INFRA_SERVICES, *(name for name in CSMS_SERVICES if name != "migrate"))
GATEWAYS = ("gateway-1", "gateway-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _published_ports(service: dict[str, Any]) -> dict[int, int]:
    """host port -> container port, from short ("[ip:]host:container") or long syntax."""
    ports = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["published"])] = int(entry["target"])
        else:
            *_, host, container = str(entry).split(":")
            ports[int(host)] = int(container.split("/")[0])
    return ports


def _healthcheck_argv(service: dict[str, Any]) -> list[str]:
    """The health-check command as an argv list, without the CMD / CMD-SHELL marker."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    return list(test[1:]) if test[0] == "CMD" else list(test)


def _service_port(service: dict[str, Any]) -> int:
    """The port the service's own command listens on for GET /health."""
    args = build_parser().parse_args(service["command"])
    return int(args.health_port if args.command == "worker" else args.port)


def test_every_expected_service_is_present(services: dict[str, Any]) -> None:
    """Infrastructure plus every CSMS process is defined."""
    assert set(services) >= {*INFRA_SERVICES, *CSMS_SERVICES}


def test_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    """The Compose specification has no `version:`; current tooling warns about it."""
    assert "version" not in compose


@pytest.mark.parametrize(("name", "sub_command"), CSMS_SERVICES.items())
def test_command_parses_with_the_cli(services: dict[str, Any], name: str, sub_command: str) -> None:
    """Each CSMS service's command is accepted by the real argument parser."""
    command = services[name]["command"]
    assert isinstance(command, list), "use the exec (list) form for command"
    args = build_parser().parse_args(command)
    assert args.command == sub_command


@pytest.mark.parametrize("name", CSMS_SERVICES)
def test_csms_services_are_built_from_this_repository(services: dict[str, Any], name: str) -> None:
    """Every CSMS service runs the image built from the Dockerfile here."""
    build = services[name]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (COMPOSE_FILE.parent / context / "Dockerfile").resolve() == DOCKERFILE


def test_gateways_have_distinct_instance_ids_and_host_ports(services: dict[str, Any]) -> None:
    """Two gateways never share an instance id or a host port; both serve container port 9000."""
    instance_ids = []
    host_ports = []
    for name in GATEWAYS:
        args = build_parser().parse_args(services[name]["command"])
        instance_ids.append(args.instance_id)
        published = _published_ports(services[name])
        assert list(published.values()) == [args.port] == [9000]
        host_ports.extend(published)
    assert None not in instance_ids
    assert len(set(instance_ids)) == len(GATEWAYS)
    assert len(set(host_ports)) == len(GATEWAYS)


def test_commands_api_publishes_8000(services: dict[str, Any]) -> None:
    """The HTTP API is reachable from the host on port 8000."""
    args = build_parser().parse_args(services["commands"]["command"])
    assert args.port == 8000
    assert _published_ports(services["commands"]).get(8000) == 8000


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_complete_healthcheck(
    services: dict[str, Any], name: str
) -> None:
    """Every long-running service has a health check with test, interval, timeout, retries."""
    healthcheck = services[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable", False)
    for key in ("test", "interval", "timeout", "retries", "start_period"):
        assert healthcheck.get(key), f"{name} healthcheck lacks {key}"


def test_migrate_is_a_one_shot_job(services: dict[str, Any]) -> None:
    """migrate is never restarted: others wait for it to complete successfully."""
    assert services["migrate"]["restart"] == "no"


@pytest.mark.parametrize("name", [name for name in LONG_RUNNING if name in CSMS_SERVICES])
def test_csms_healthcheck_probes_the_port_of_its_command(
    services: dict[str, Any], name: str
) -> None:
    """The probe URL is http://127.0.0.1:<port>/health with the port the command listens on."""
    service = services[name]
    argv = _healthcheck_argv(service)
    port = _service_port(service)
    assert argv == ["csms", "probe", f"http://127.0.0.1:{port}/health"]
    assert build_parser().parse_args(argv[1:]).command == "probe"


@pytest.mark.parametrize("name", [name for name in CSMS_SERVICES if name != "migrate"])
def test_depends_on_conditions(services: dict[str, Any], name: str) -> None:
    """Long-running CSMS services wait for healthy infrastructure and a finished migration."""
    depends_on = services[name]["depends_on"]
    assert isinstance(depends_on, dict), "use the long form of depends_on with conditions"
    assert depends_on["rabbitmq"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    if name in GATEWAYS:
        assert set(depends_on) == {"rabbitmq", "migrate"}
    else:
        assert depends_on["postgres"]["condition"] == "service_healthy"


def test_migrate_waits_for_healthy_postgres(services: dict[str, Any]) -> None:
    """The migration runs only once Postgres accepts connections."""
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", CSMS_SERVICES)
def test_csms_environment_points_at_the_infrastructure(services: dict[str, Any], name: str) -> None:
    """AMQP goes to host `rabbitmq`; the database URL matches the postgres service's account."""
    env = _environment(services[name])

    amqp = urlsplit(env["CSMS_AMQP_URL"])
    assert amqp.scheme == "amqp"
    assert amqp.hostname == "rabbitmq"

    postgres_env = _environment(services["postgres"])
    database = urlsplit(env["CSMS_DATABASE_URL"])
    assert database.scheme == "postgresql+asyncpg"
    assert database.hostname == "postgres"
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]


@pytest.mark.parametrize("name", CSMS_SERVICES)
def test_csms_environment_is_valid_settings(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment of each CSMS service loads into Settings in distributed mode."""
    for key in list(Settings.model_fields):
        monkeypatch.delenv(f"CSMS_{key.upper()}", raising=False)
    for key, value in _environment(services[name]).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert not settings.standalone


def test_every_csms_variable_is_a_setting() -> None:
    """Each CSMS_X named in the compose file or Dockerfile is a field x of Settings."""
    names = set()
    for path in (COMPOSE_FILE, DOCKERFILE):
        names |= set(re.findall(r"\bCSMS_([A-Z0-9_]+)", path.read_text()))
    assert names, "expected CSMS_* variables in docker-compose.yml"
    unknown = {f"CSMS_{name}" for name in names if name.lower() not in Settings.model_fields}
    assert not unknown, f"not fields of csms.config.Settings: {sorted(unknown)}"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_dockerfile_entrypoint_is_csms() -> None:
    """The image's entrypoint is the `csms` console script, so compose passes sub-commands."""
    entrypoints = [args for keyword, args in _dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert entrypoints
    assert json.loads(entrypoints[-1]) == ["csms"]


def test_dockerfile_ships_the_migrations() -> None:
    """`csms migrate` needs migrations/ and alembic.ini in /app, the working directory."""
    instructions = _dockerfile_instructions()
    final_stage = instructions[
        max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM") :
    ]
    workdirs = [args for keyword, args in final_stage if keyword == "WORKDIR"]
    assert workdirs[-1] == "/app"
    copied = [args.split()[:-1] for keyword, args in final_stage if keyword == "COPY"]
    sources = {source.rstrip("/") for args in copied for source in args}
    assert {"migrations", "alembic.ini"} <= sources
