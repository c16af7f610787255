"""Processes of a sandboxed program, found through ``/proc`` (Linux): group, uid, namespace, and kills that
cannot hit a reused pid."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def proc_stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name (state, parent, group, ...); empty once the pid is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def proc_status(pid: int, key: str) -> list[str]:
    """The values of one ``/proc/PID/status`` line; empty once the pid is gone."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split(f"\n{key}:", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []


def in_group(pid: int, leader: int) -> bool:
    """``pid`` is a member of the process group led by ``leader`` (the leader itself excluded)."""
    return pid != leader and proc_stat(pid)[2:3] == [str(leader)]


def runs_as(pid: int, uid: int) -> bool:
    return proc_status(pid, "Uid")[:1] == [str(uid)]


def parent(pid: int) -> int | None:
    """The parent of ``pid``; None once it is gone."""
    stat = proc_stat(pid)
    return int(stat[1]) if stat else None


def ns_init(pid: int) -> bool:
    ids = proc_status(pid, "NSpid")
    return len(ids) > 1 and ids[-1] == "1"


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def kill_where(match: Callable[[int], bool]) -> None:
    """SIGKILL every process for which ``match(pid)`` holds, checked again through a pidfd (no pid reuse)."""
    for pid in pids():
        if not match(pid):
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if match(pid):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


def wait_until_gone(match: Callable[[int], bool], deadline: float) -> None:
    """Poll until no process (zombies included) matches, or the deadline passes."""
    while any(match(pid) for pid in pids()) and time.monotonic() < deadline:
        time.sleep(0.01)
