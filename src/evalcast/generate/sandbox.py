"""Run model-written Python in a separate, contained process (Linux).

Layers, each used when it works on the machine (probed once, see :func:`sandbox_layers`):

* ``net namespace`` / ``pid namespace`` (``unshare --net --pid --fork --kill-child``; as non-root through
  ``--map-root-user``, i.e. a user namespace): no network interface but loopback, and when the
  supervisor (PID 1 of the namespace) ends, the kernel kills every process the program left behind.
* ``unprivileged uid`` (root only, ``setpriv``): the program runs as a fresh uid with no capabilities
  and ``no_new_privs``, so file permissions stop reads of private files and writes to root-owned paths,
  and ``RLIMIT_NPROC`` (not enforced for root) stops fork bombs.
* ``mount namespace`` (root only, where the Python install sits under a directory others cannot enter,
  e.g. ``/root``): an empty tmpfs covers that directory (``/root``, ``/home/USER``) and only the install
  is bound back, read-only, so the fresh uid starts Python without extra rights and reads nothing else
  there. Where this does not work, the uid keeps ``CAP_DAC_READ_SEARCH`` instead (layer
  ``read-anywhere capability``) and can then *read* any file.
* ``rlimits``: CPU seconds, address space, file size (which also caps captured output), no core
  files, and a process count where it counts only the sandbox's own processes.
* ``audit guard`` (PEP 578 hook installed before the program runs): refuses sockets, process creation,
  signals, ctypes, rlimit changes and writes outside the working directory. Python-level only: code
  that reaches raw syscalls another way (``_posixsubprocess``, a C extension) is not stopped by it, and
  PEP 578 hooks are not a security boundary against code written to defeat them.
* always: ``python -I``, a cleared environment, a throwaway working directory, its own session and
  process group killed as a whole at exit or timeout, a wall-clock limit. The verdict is returned only
  once the group's processes (and the fresh uid's) are gone, or after at most ``STOP_GRACE_S``.

Not covered: reads of world-readable files (``/etc``, ``/tmp``, other users' public files) and, under the
``read-anywhere capability`` layer, of any file; writes to world-writable directories such as ``/tmp``
when the audit guard is off; forging the verdict channel on purpose.
This contains accidents and careless model code; it is not a jail for adversarial code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from evalcast.generate._sandbox_layers import SANDBOX_UID_BASE, SandboxError, env
from evalcast.generate._sandbox_layers import plan as _plan
from evalcast.generate._sandbox_procs import in_group, kill_where, ns_init, runs_as, wait_until_gone
from evalcast.validation import above, at_least, check_config, non_empty

_CHANNEL_LIMIT = 1 << 16
#: Longest wait, after the kill, for the program's processes to be gone before the verdict is returned.
STOP_GRACE_S = 2.0
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxConfig:
    """Limits for one program and how many run at once."""

    timeout_s: float = 10.0
    """Wall-clock limit; the whole process group is killed when it passes."""
    cpu_s: int = 10
    """CPU-time limit (``RLIMIT_CPU``)."""
    memory_mb: int = 1024
    """Address-space limit (``RLIMIT_AS``)."""
    output_bytes: int = 1 << 20
    """Largest stdout+stderr (and any file the program writes) (``RLIMIT_FSIZE``)."""
    max_processes: int = 16
    """Process limit (``RLIMIT_NPROC``), applied only where it counts the sandbox's processes alone."""
    workers: int = 2
    """Programs run concurrently by :func:`run_programs`."""
    namespaces: bool = True
    """Use network/PID namespaces when ``unshare`` works here."""
    drop_privileges: bool = True
    """When running as root, run the program as a fresh unprivileged uid (needs ``setpriv``)."""
    audit_guard: bool = True
    """Install the in-process audit guard before the program runs."""
    python: str = sys.executable
    """Interpreter that runs the program (started with ``-I``)."""

    def __post_init__(self) -> None:
        check_config(self, timeout_s=above(0), cpu_s=at_least(1), memory_mb=at_least(1), output_bytes=at_least(1),
                     max_processes=at_least(1), workers=at_least(1), python=non_empty())


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended. ``reason`` is a short countable category; ``detail`` says more."""

    passed: bool
    reason: str
    detail: str = ""
    output: str = ""
    wall_s: float = 0.0


def sandbox_layers(config: SandboxConfig = SandboxConfig()) -> tuple[str, ...]:
    """The containment layers that programs get on this machine with ``config``."""
    plan = _plan(config.namespaces, config.drop_privileges, config.python)
    return plan.layers + (("audit guard",) if config.audit_guard else ())


def run_program(source: str, config: SandboxConfig = SandboxConfig()) -> SandboxResult:
    """Run ``source`` as a script in the sandbox; it passes when it ends without an exception."""
    plan = _plan(config.namespaces, config.drop_privileges, config.python)
    uid = _next_uid() if plan.drop_uid else None
    workdir = tempfile.mkdtemp(prefix="evalcast-sandbox-")
    read_end, write_end = os.pipe()
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        cmd = plan.command(uid, config.python)
        payload = {"source": source, "channel_fd": write_end, "guard": config.audit_guard,
                   "limits": _limits(config, count_processes=uid is not None or "user namespace" in plan.layers)}
        with tempfile.TemporaryFile() as out:
            start = time.perf_counter()
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=workdir, env=env(workdir), pass_fds=(write_end,),
                                        start_new_session=True)
            except OSError as exc:
                raise SandboxError(f"could not start the sandbox ({cmd[0]}): {exc}") from exc
            os.close(write_end)
            write_end = -1
            timed_out = _feed_and_wait(proc, json.dumps(payload).encode(), config.timeout_s)
            if uid is not None:
                _kill_uid(uid)
            wall = time.perf_counter() - start
            records = _read_channel(read_end)
            out.seek(0)
            output = out.read(config.output_bytes + 1).decode("utf-8", "replace")
        return _verdict(records, timed_out, output, wall, config)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        _remove(workdir)


def run_programs(sources: Sequence[str], config: SandboxConfig = SandboxConfig(), *,
                 progress: bool = False) -> list[SandboxResult]:
    """Run many programs, ``config.workers`` at a time; results keep the order of ``sources``."""
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        results = pool.map(functools.partial(run_program, config=config), sources)
        return list(tqdm(results, total=len(sources), desc="sandbox", disable=not progress))


def _next_uid() -> int:
    with _uid_lock:
        slot = next(_uid_counter) % 4096
    return SANDBOX_UID_BASE + (os.getpid() % 4096) * 4096 + slot


def _limits(config: SandboxConfig, *, count_processes: bool) -> dict[str, list[int]]:
    limits = {"RLIMIT_CPU": [config.cpu_s, config.cpu_s + 1],
              "RLIMIT_AS": [config.memory_mb << 20] * 2,
              "RLIMIT_FSIZE": [config.output_bytes] * 2,
              "RLIMIT_CORE": [0, 0]}
    if count_processes:
        limits["RLIMIT_NPROC"] = [config.max_processes] * 2
    return limits


def _feed_and_wait(proc: subprocess.Popen[bytes], payload: bytes, timeout: float) -> bool:
    """Send the payload, wait for exit or timeout, stop the process group; True when it timed out.

    stdin stays open until then: if this process dies first, the supervisor sees end of file and kills
    the program.
    """
    assert proc.stdin is not None
    pidfd = os.pidfd_open(proc.pid)
    try:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(payload + b"\n")
            proc.stdin.flush()
        timed_out = not select.select([pidfd], [], [], timeout)[0]
        _stop_group(proc.pid, pidfd)
        proc.wait()
        return timed_out
    finally:
        os.close(pidfd)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()


def _stop_group(leader: int, pidfd: int) -> None:
    """Kill the group led by ``leader`` and wait (at most ``STOP_GRACE_S``) until its processes are gone.

    Members die before the leader, so each is reaped by its parent inside the sandbox: killed together
    with the leader, an orphan would linger as a zombie of the machine's init. A PID-namespace init (the
    supervisor) is spared for a moment: it reaps the program, reports, and its end takes the namespace
    with it. The leader is reaped only after this returns, so the group id cannot be reused meanwhile.
    """
    start = time.monotonic()
    deadline = start + STOP_GRACE_S
    while not select.select([pidfd], [], [], 0)[0] and time.monotonic() < deadline:
        spare = time.monotonic() < start + STOP_GRACE_S / 4
        kill_where(lambda pid, spare=spare: in_group(pid, leader) and not (spare and ns_init(pid)))
        select.select([pidfd], [], [], 0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)
    wait_until_gone(lambda pid: in_group(pid, leader), deadline)


def _kill_uid(uid: int) -> None:
    """Kill what is left running as the sandbox uid (processes that left the group with setsid) and wait
    (at most ``STOP_GRACE_S``) until it is gone."""
    kill_where(lambda pid: runs_as(pid, uid))
    wait_until_gone(lambda pid: runs_as(pid, uid), time.monotonic() + STOP_GRACE_S)


def _read_channel(fd: int) -> list[dict[str, Any]]:
    os.set_blocking(fd, False)
    data = b""
    while len(data) < _CHANNEL_LIMIT:
        try:
            chunk = os.read(fd, _CHANNEL_LIMIT)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _verdict(records: list[dict[str, Any]], timed_out: bool, output: str, wall: float,
             config: SandboxConfig) -> SandboxResult:
    verdict = next((r for r in records if r.get("kind") == "verdict"), None)
    ended = next((r for r in records if r.get("kind") == "exit"), None)
    tail = output[-4000:]

    def fail(reason: str, detail: str = "") -> SandboxResult:
        return SandboxResult(False, reason, detail, tail, wall)

    if timed_out:
        return fail("timeout", f"no result after {config.timeout_s:g} s wall time")
    if verdict is not None and verdict.get("blocked"):
        return fail(f"blocked: {verdict['blocked']}", str(verdict.get("message", "")))
    if verdict is not None and verdict.get("status") == "passed":
        return SandboxResult(True, "passed", "", tail, wall)
    if verdict is not None:
        kind, message = str(verdict.get("type")), str(verdict.get("message", ""))
        detail = f"{kind}: {message}" if message else kind
        if kind == "AssertionError":
            return fail("test failed", detail)
        if kind == "MemoryError":
            return fail("memory limit", f"over {config.memory_mb} MiB of address space")
        if kind == "BlockingIOError" or verdict.get("errno") == errno.EAGAIN:
            return fail("process limit", detail)
        if verdict.get("errno") == errno.EFBIG:
            return fail("output limit", f"over {config.output_bytes} bytes of output")
        return fail(f"error: {kind}", detail)
    if ended is None:
        return fail("sandbox error", "the supervisor reported nothing (killed by the program?)")
    code = int(ended.get("code", 0))
    if code >= 0:
        return fail("exited early", f"exit code {code} before the program finished")
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    if -code == signal.SIGXCPU:
        return fail("cpu time limit", f"over {config.cpu_s} s of CPU time")
    if -code == signal.SIGXFSZ:
        return fail("output limit", f"over {config.output_bytes} bytes of output")
    hint = " (the hard CPU limit and the OOM killer send SIGKILL)" if -code == signal.SIGKILL else ""
    return fail(f"killed: {name}", f"killed by {name}{hint}")


def _remove(path: str) -> None:
    """Remove the working directory even if the program made parts of it unreadable."""
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            child = os.path.join(root, name)
            try:
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
            except OSError:
                continue
    shutil.rmtree(path, ignore_errors=True)
