"""Hold running processes to a share of the CPU, as a container's `cpus:` setting does: a
cgroup of their own with a CPU quota (cgroup v1's `cpu` controller or v2's `cpu.max`).

The scale-out scenario uses it to give each gateway the same CPU budget, so that on a small
machine shared with the rest of the stack a second gateway brings a budget of its own, as it
would on a host of its own. Writing cgroups needs the right to (root, or a delegated
subtree); where the machine does not give it, `hold` says why and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# A short period: a process held to 0.35 of a core runs 3.5 ms in every 10 ms, rather than
# 35 ms then nothing for 65 ms as with the kernel's default 100 ms period.
PERIOD_US = 10_000


@dataclass
class CpuQuota:
    """The outcome of `hold`: applied (`reason` None) or not, and why."""

    cores: float
    reason: str | None = None
    # Process name -> the cgroup directory holding it while the quota applies.
    groups: dict[str, Path] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.reason is None

    def throttled_share(self) -> dict[str, float | None]:
        """Per process, the share of quota periods in which it used up its quota: near 1, the
        quota was what held it back."""
        shares: dict[str, float | None] = {}
        for name, group in self.groups.items():
            stat = _read_stat(group / "cpu.stat")
            periods = stat.get("nr_periods", 0)
            shares[name] = round(stat.get("nr_throttled", 0) / periods, 3) if periods else None
        return shares


@dataclass(frozen=True)
class _Hierarchy:
    """Where a process sits in the cgroup hierarchy that has the cpu controller."""

    mount: Path
    version: int
    # The process's cgroup, relative to the mount ("/" or "/a/b").
    path: str

    @property
    def directory(self) -> Path:
        return self.mount / self.path.lstrip("/")


@contextlib.contextmanager
def hold(
    pids: Mapping[str, int], cores: float, tag: str, root: Path = Path("/")
) -> Iterator[CpuQuota]:
    """Within the block, each process runs at most `cores` of a core (each its own quota);
    afterwards it is back in its own cgroup. `root` is where /proc and /sys are (tests)."""
    quota = CpuQuota(cores)
    moved: list[tuple[int, _Hierarchy, Path]] = []
    try:
        for name, pid in pids.items():
            hierarchy = _cpu_hierarchy(root, pid)
            if hierarchy is None:
                quota.reason = "no cgroup hierarchy with the cpu controller is mounted"
                break
            group = hierarchy.directory / f"csms-bench-{tag}-{name}"
            # Listed first, so that a group half set up is removed too.
            moved.append((pid, hierarchy, group))
            try:
                _create(group, hierarchy, cores)
                (group / "cgroup.procs").write_text(str(pid))
            except OSError as error:
                quota.reason = f"the cgroup {group} could not be set up: {error}"
                break
            quota.groups[name] = group
        if quota.reason is not None:
            _release(moved)
            moved = []
            quota.groups = {}
        yield quota
    finally:
        _release(moved)


def _cpu_hierarchy(root: Path, pid: int) -> _Hierarchy | None:
    mounts = (root / "proc/mounts").read_text().splitlines()
    memberships = (root / f"proc/{pid}/cgroup").read_text().splitlines()
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        mount = root / fields[1].lstrip("/")
        if fields[2] == "cgroup" and "cpu" in fields[3].split(","):
            # "4:cpu,cpuacct:/path": the process's place in the hierarchy with `cpu`.
            for membership in memberships:
                _, controllers, path = membership.split(":", 2)
                if "cpu" in controllers.split(","):
                    return _Hierarchy(mount, 1, path)
        elif fields[2] == "cgroup2" and "cpu" in _read_words(mount / "cgroup.controllers"):
            for membership in memberships:
                if membership.startswith("0::"):
                    return _Hierarchy(mount, 2, membership[3:])
    return None


def _create(group: Path, hierarchy: _Hierarchy, cores: float) -> None:
    quota_us = max(1000, round(cores * PERIOD_US))
    if hierarchy.version == 1:
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
    else:
        # The parent must hand the cpu controller down to its children.
        (hierarchy.directory / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")


def _release(moved: list[tuple[int, _Hierarchy, Path]]) -> None:
    for pid, hierarchy, group in moved:
        # A process that has exited has left the group already.
        with contextlib.suppress(OSError):
            (hierarchy.directory / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):
            os.rmdir(group)


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _read_stat(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return {name: int(value) for name, value in (line.split() for line in lines if line)}
