"""Resident memory and CPU time of processes, from /proc (Linux)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def rss_kb(pid: int, *, with_children: bool = False) -> int:
    """VmRSS of `pid` in KB; with its child processes' (recursively)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            own = int(line.split()[1])
            break
    else:
        raise RuntimeError(f"no VmRSS for process {pid}")
    if not with_children:
        return own
    return own + sum(_alive(rss_kb, child, 0) for child in children(pid))


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU time `pid` used so far, in seconds; with its child processes' (those
    it waited for, and those still running, recursively)."""
    fields = _stat(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields 14 and 15 (utime, stime), 16 and 17 (cutime, cstime) counted from 1; [0] here is
    # field 3.
    used = (int(fields[11]) + int(fields[12])) / ticks
    if not with_children:
        return used
    used += (int(fields[13]) + int(fields[14])) / ticks
    return used + sum(_alive(cpu_seconds, child, 0.0) for child in children(pid))


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    # Field 4 of the stat line, the parent's pid.
    return _processes(lambda entry: int(_stat(int(entry.name))[1]) == pid)


def _stat(pid: int) -> list[str]:
    # After the command name, which may hold spaces and parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _alive(measure: Callable[..., T], pid: int, gone: T) -> T:
    """`measure(pid, with_children=True)`, or `gone` for a process that ended meanwhile."""
    try:
        return measure(pid, with_children=True)
    except (OSError, IndexError, ValueError, RuntimeError):
        return gone


def pids_named(command: str) -> list[int]:
    """Processes whose command name (/proc/<pid>/comm) is `command`."""
    return _processes(lambda entry: (entry / "comm").read_text().strip() == command)


def _processes(matches: Callable[[Path], bool]) -> list[int]:
    """The pids of the processes whose /proc entry `matches` (those that end meanwhile left
    out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if matches(entry):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
