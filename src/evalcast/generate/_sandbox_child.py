"""Child side of the code sandbox: runs as ``python -I _sandbox_child.py`` inside the isolation layers.

Standard library only and never imported by evalcast itself. It reads one JSON line from stdin, forks a
worker and supervises it (as PID 1 of a fresh PID namespace, where signals with a default action are
ignored, the program must not run in the supervisor). The worker sets resource limits, installs the audit
guard, execs the program and reports one JSON line on the channel fd; the supervisor reports how the
worker ended. Each line is under PIPE_BUF, so lines from both never interleave. evalcast keeps stdin
open while it waits: end of file there (evalcast gone) makes the supervisor kill the worker and remove
the working directory, which evalcast can no longer do.
"""

import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import threading
import traceback

PROCESS_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.vfork", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
    "subprocess.Popen", "pty.spawn", "os.startfile"})
SIGNAL_EVENTS = frozenset({"os.kill", "os.killpg", "signal.pthread_kill"})
LIMIT_EVENTS = frozenset({"resource.setrlimit", "resource.prlimit"})
CTYPES_ALLOWED = frozenset({"ctypes.dlopen"})  # importing ctypes (numpy does); symbol lookups stay blocked
PATH_EVENTS = frozenset({
    "os.rename", "os.link", "os.symlink", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
    "os.truncate", "os.utime", "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags", "os.lchmod",
    "os.mkfifo", "os.mknod", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copymode",
    "shutil.copystat", "shutil.copytree", "tempfile.mkstemp", "tempfile.mkdtemp"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
WRITABLE_DEVICES = ("/dev/null",)


class SandboxViolation(PermissionError):
    """Raised by the audit guard; the first violation decides the verdict even if the program catches it."""


def write_line(fd, record, dumps=json.dumps, write=os.write):
    """One JSON line below PIPE_BUF (the message is shortened until it fits), so writes stay atomic."""
    line = dumps(record)
    while len(line) > 3800 and record.get("message"):
        record["message"] = record["message"][: len(record["message"]) // 2]
        line = dumps(record)
    write(fd, (line + "\n").encode())


def describe(exc):
    """The verdict for an exception, even one whose ``__str__`` or ``errno`` misbehaves."""
    verdict = {"kind": "verdict", "status": "exception", "type": type(exc).__name__, "message": "", "errno": None}
    with contextlib.suppress(BaseException):
        verdict["message"] = str(exc)[:1000]
    with contextlib.suppress(BaseException):
        code = getattr(exc, "errno", None)
        verdict["errno"] = code if type(code) is int else None
    return verdict


def install_guard(root, blocked):
    """Audit hook (PEP 578) refusing network, process creation, signals, foreign calls and writes outside root."""
    root = os.path.realpath(root)
    realpath, fspath, startswith = os.path.realpath, os.fspath, str.startswith

    def outside(path):
        if isinstance(path, int):
            return False
        try:
            path = realpath(fspath(path))
        except (TypeError, ValueError):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return not (path == root or startswith(path, root + os.sep) or path in WRITABLE_DEVICES)

    def deny(what, event):
        if not blocked:
            blocked.append(what)
        raise SandboxViolation(f"evalcast sandbox: {what} is not allowed ({event})")

    def hook(event, args):
        if event == "open":
            path, mode, flags = (*args, None, 0)[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            if writing and outside(path):
                deny("write outside working dir", event)
        elif startswith(event, "socket.") or event in ("urllib.Request", "webbrowser.open"):
            deny("network", event)
        elif event in PROCESS_EVENTS:
            deny("process creation", event)
        elif event in SIGNAL_EVENTS:
            deny("signals", event)
        elif startswith(event, "ctypes.") and event not in CTYPES_ALLOWED:
            deny("ctypes", event)
        elif event in LIMIT_EVENTS:
            deny("rlimit change", event)
        elif event in PATH_EVENTS and any(isinstance(a, (str, bytes, os.PathLike)) and outside(a) for a in args):
            deny("write outside working dir", event)

    sys.addaudithook(hook)


def set_limits(limits):
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), tuple(value))


def worker(payload, fd):
    me, getpid, finish = os.getpid(), os.getpid, os._exit  # bound now: the program may rebind module attributes
    set_limits(payload["limits"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write then fails with EFBIG instead of killing
    blocked = []
    if payload["guard"]:
        install_guard(os.getcwd(), blocked)
    verdict = {"kind": "verdict", "status": "passed"}
    try:
        exec(compile(payload["source"], "<program>", "exec"), {"__name__": "__main__"})
    except BaseException as exc:  # every way the program can end is a verdict, SystemExit included
        verdict = describe(exc)
        with contextlib.suppress(BaseException):  # stderr may be over the output limit
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # from the program's frame on
    if blocked:
        verdict["blocked"] = blocked[0]
    if getpid() == me:  # a process the program forked must not speak for it
        write_line(fd, verdict)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
    finish(0)


def kill_on_eof(fd, pidfd, orphaned):
    while os.read(fd, 4096):
        pass
    orphaned.set()
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def main():
    payload = json.loads(sys.stdin.buffer.readline())
    fd = payload["channel_fd"]
    watch = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    pid = os.fork()
    if pid == 0:
        os.close(watch)
        worker(payload, fd)
    orphaned = threading.Event()
    threading.Thread(target=kill_on_eof, args=(watch, os.pidfd_open(pid), orphaned), daemon=True).start()
    while True:  # reap orphans too: as PID 1 of a namespace they are ours
        done, status = os.wait()
        if done == pid:
            break
    if orphaned.is_set():
        shutil.rmtree(os.getcwd(), ignore_errors=True)
    with contextlib.suppress(OSError):  # nobody may be listening any more
        write_line(fd, {"kind": "exit", "code": os.waitstatus_to_exitcode(status)})
    os._exit(0)


if __name__ == "__main__":
    main()
