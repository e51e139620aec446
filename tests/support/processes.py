"""Real CSMS processes for end-to-end tests: `csms run`, or gateways + worker + api."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CSMS = [sys.executable, "-m", "csms"]
# Short intervals so that liveness and presence settle within a test.
TEST_SETTINGS = {
    "CSMS_SEEN_FLUSH_INTERVAL": "0.5",
    "CSMS_LOG_LEVEL": "INFO",
    "CSMS_PING_INTERVAL": "5",
    "CSMS_PING_TIMEOUT": "5",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [*CSMS, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float = 30.0) -> None:
        assert self.popen is not None
        if self.health_url is None:
            return
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                try:
                    if client.get(self.health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy in {timeout} s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Deployment:
    """One running CSMS: its OCPP endpoints (one per gateway) and its HTTP API."""

    mode: str
    ocpp_urls: list[str]
    api_url: str
    processes: list[Process] = field(default_factory=list)

    def csms(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `csms` command (e.g. `tokens add`) against this deployment's settings."""
        return subprocess.run(
            [*CSMS, *args],
            env=self.processes[0].env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    @property
    def ocpp_url(self) -> str:
        return self.ocpp_urls[0]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        for process in self.processes:
            process.wait_healthy()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(80)}" for p in self.processes)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return env | TEST_SETTINGS | extra


def standalone(workdir: Path, settings: dict[str, str] | None = None) -> Deployment:
    ocpp_port, api_port = free_port(), free_port()
    database = {"CSMS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'csms.db'}"}
    env = _env(database | (settings or {}))
    process = Process(
        "csms-run",
        ["run", "--ocpp-port", str(ocpp_port), "--api-port", str(api_port), "--host", "127.0.0.1"],
        env,
        workdir / "run.log",
        f"http://127.0.0.1:{api_port}/health",
    )
    scheme = "wss" if int((settings or {}).get("CSMS_SECURITY_PROFILE", "0")) >= 2 else "ws"
    return Deployment(
        "standalone",
        [f"{scheme}://localhost:{ocpp_port}/ocpp"],
        f"http://127.0.0.1:{api_port}",
        [process],
    )


def distributed(
    workdir: Path,
    amqp_url: str,
    database_url: str,
    gateways: int = 2,
    workers: int = 2,
    settings: dict[str, str] | None = None,
) -> Deployment:
    """Gateways, workers (competing consumers: correctness must not depend on there being
    one) and the API, against RabbitMQ and Postgres."""
    env = _env({"CSMS_AMQP_URL": amqp_url, "CSMS_DATABASE_URL": database_url} | (settings or {}))
    migrate = subprocess.run(
        [*CSMS, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"csms migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
    api_port = free_port()
    processes = []
    for number in range(1, workers + 1):
        port = free_port()
        processes.append(
            Process(
                f"worker-{number}",
                ["worker", "--health-port", str(port)],
                env,
                workdir / f"worker-{number}.log",
                f"http://127.0.0.1:{port}/health",
            )
        )
    processes.append(
        Process(
            "api",
            ["api", "--port", str(api_port), "--host", "127.0.0.1"],
            env,
            workdir / "api.log",
            f"http://127.0.0.1:{api_port}/health",
        )
    )
    ocpp_urls = []
    for number in range(1, gateways + 1):
        port = free_port()
        processes.append(
            Process(
                f"gateway-{number}",
                [
                    "gateway",
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--instance-id",
                    f"gw{number}",
                ],
                env,
                workdir / f"gateway-{number}.log",
                f"http://127.0.0.1:{port}/health",
            )
        )
        ocpp_urls.append(f"ws://127.0.0.1:{port}/ocpp")
    return Deployment("distributed", ocpp_urls, f"http://127.0.0.1:{api_port}", processes)
