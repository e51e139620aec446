"""The benchmark's CPU quota: which cgroup files it writes (on a made-up /proc and /sys), and
that on this machine's kernel a process held to a fifth of a core gets no more."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import cpu_quota

PID = 4242


def _machine(tmp_path: Path, mounts: str, membership: str) -> Path:
    (tmp_path / f"proc/{PID}").mkdir(parents=True)
    (tmp_path / "proc/mounts").write_text(mounts)
    (tmp_path / f"proc/{PID}/cgroup").write_text(membership)
    return tmp_path


def test_with_cgroup_v1_the_process_gets_a_group_with_a_cfs_quota_and_goes_back(
    tmp_path: Path,
) -> None:
    root = _machine(
        tmp_path,
        "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
        "5:memory:/box\n2:cpu,cpuacct:/box\n0::/\n",
    )
    parent = root / "sys/fs/cgroup/cpu,cpuacct/box"
    parent.mkdir(parents=True)

    with cpu_quota.hold({"gateway-1": PID}, 0.35, "t1", root=root) as quota:
        group = parent / "csms-bench-t1-gateway-1"
        assert quota.applied
        assert quota.groups == {"gateway-1": group}
        assert (group / "cpu.cfs_period_us").read_text() == "10000"
        assert (group / "cpu.cfs_quota_us").read_text() == "3500"
        assert (group / "cgroup.procs").read_text() == str(PID)
        (group / "cpu.stat").write_text("nr_periods 200\nnr_throttled 150\nthrottled_time 9\n")
        assert quota.throttled_share() == {"gateway-1": 0.75}

    # Back in the group it came from.
    assert (parent / "cgroup.procs").read_text() == str(PID)


def test_with_cgroup_v2_the_parent_hands_down_the_cpu_controller(tmp_path: Path) -> None:
    root = _machine(tmp_path, "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "0::/\n")
    mount = root / "sys/fs/cgroup"
    mount.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")

    with cpu_quota.hold({"gateway-2": PID}, 0.5, "t2", root=root) as quota:
        assert quota.applied
        assert (mount / "cgroup.subtree_control").read_text() == "+cpu"
        assert (mount / "csms-bench-t2-gateway-2/cpu.max").read_text() == "5000 10000"
        assert (mount / "csms-bench-t2-gateway-2/cgroup.procs").read_text() == str(PID)


def test_without_a_cpu_controller_nothing_changes_and_the_reason_is_given(
    tmp_path: Path,
) -> None:
    root = _machine(tmp_path, "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "0::/\n")
    mount = root / "sys/fs/cgroup"
    mount.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("memory pids\n")

    with cpu_quota.hold({"gateway-1": PID}, 0.35, "t3", root=root) as quota:
        assert not quota.applied
        assert quota.reason == "no cgroup hierarchy with the cpu controller is mounted"
        assert quota.groups == {}
        assert sorted(p.name for p in mount.iterdir()) == ["cgroup.controllers"]


def test_a_group_that_cannot_be_set_up_leaves_every_process_where_it_was(
    tmp_path: Path,
) -> None:
    root = _machine(tmp_path, "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n", "2:cpu:/\n0::/\n")
    # No such directory: the group cannot be made.
    with cpu_quota.hold({"gateway-1": PID}, 0.35, "t4", root=root) as quota:
        assert not quota.applied
        assert quota.reason is not None
        assert "could not be set up" in quota.reason
        assert quota.groups == {}


def test_a_busy_process_held_to_a_fifth_of_a_core_gets_about_that() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with cpu_quota.hold({"busy": busy.pid}, 0.2, f"test{os.getpid()}") as quota:
            assert quota.applied, quota.reason
            group = quota.groups["busy"]
            before = _cpu_seconds(busy.pid)
            time.sleep(1.0)
            used = _cpu_seconds(busy.pid) - before
            throttled = quota.throttled_share()["busy"]
        # Uncapped it would take a whole core; generous bounds, the machine may be busy.
        assert used < 0.45
        assert throttled is not None
        assert throttled > 0.5
        assert not group.exists()
    finally:
        busy.kill()
        busy.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
