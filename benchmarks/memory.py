"""Resident memory and CPU time of processes, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields 14 and 15 (utime, stime) counted from 1; [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / ticks


def pids_named(command: str) -> list[int]:
    """Processes whose command name (/proc/<pid>/comm) is `command`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == command:
                found.append(int(entry.name))
        except OSError:
            continue
    return found
