"""Hostile programs as completions: each must stay inside the sandbox's limits and leave nothing behind.

Every program tries one escape (network, fork bomb, memory bomb, disk fill, endless output, reading the
home directory or the environment, writing outside the working directory, killing the parent, ignoring
SIGTERM, sleeping forever, a daemon that outlives the run ...). Some run without the audit guard, to
test the layers beneath it. An *escape* is evidence on the parent's side after the program ended:

* a connection reached a listener the parent opened on 127.0.0.1;
* a marker file appeared in a world-writable directory outside the working directory;
* a secret (an environment variable of the parent, a file in its home directory) appears in the output;
* a process of the program is still in ``/proc`` (a sandbox uid, zombies included) the moment the scorer
  returns;
* the run took longer than its wall-clock limit plus 5 s, or the parent lost its canary file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import contextlib

from evalcast.generate.sandbox import SANDBOX_UID_BASE, SandboxConfig, run_program, sandbox_layers

RESULT = Path(__file__).resolve().parents[1] / "results" / "reliability.json"

PROGRAMS: dict[str, str] = {
    "socket connect": "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')",
    "raw _socket": "import _socket; s = _socket.socket(); s.connect(('127.0.0.1', {port}))",
    "urllib": "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)",
    "dns lookup": "import socket; print(socket.gethostbyname('example.com'))",
    "fork bomb": "import os\nwhile True: os.fork()",
    "multiprocessing bomb": "import multiprocessing as m\nwhile True: m.Process(target=print).start()",
    "thread bomb": "import threading, time\nwhile True: threading.Thread(target=time.sleep, args=(60,)).start()",
    "memory bomb": "x = bytearray(1 << 40)",
    "memory creep": "xs = []\nwhile True: xs.append(bytearray(1 << 24))",
    "disk fill one file": "f = open('big', 'wb')\nwhile True: f.write(b'x' * (1 << 20))",
    "disk fill many files": "i = 0\nwhile True:\n    open(f'f{{i}}', 'wb').write(b'x' * (1 << 19)); i += 1",
    "endless stdout": "while True: print('y' * 1000)",
    "endless stderr": "import sys\nwhile True: sys.stderr.write('z' * 1000)",
    "read home secret": "print(open({secret_path!r}).read())",
    "list home dir": "import os; print(os.listdir({home!r}))\nprint(open({secret_path!r}).read())",
    "read environment": "import os; print(dict(os.environ))",
    "read /proc environ": "import glob\nfor p in glob.glob('/proc/*/environ'):\n    try: print(open(p,'rb').read())\n"
    "    except OSError: pass",
    "write outside": "open({marker!r}, 'w').write('escaped')",
    "os.open outside": "import os; os.close(os.open({marker!r}, os.O_CREAT | os.O_WRONLY))",
    "rename outside": "open('m', 'w').write('x'); import os; os.rename('m', {marker!r})",
    "symlink outside": "import os; os.symlink({marker!r}, 'link'); open('link', 'w').write('x')",
    "kill parent": "import os, signal; os.kill(os.getppid(), signal.SIGKILL)",
    "kill everything": "import os, signal; os.kill(-1, signal.SIGKILL)",
    "ignore SIGTERM and sleep": "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1e6)",
    "sleep forever": "import time; time.sleep(1e9)",
    "busy loop": "while True: pass",
    "daemon via fork": "import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(1e6)",
    "daemon via Popen": "import subprocess; subprocess.Popen(['sleep', '1000'], start_new_session=True)",
    "os.system": "import os; os.system('touch {marker}')",
    "ctypes kill": "import ctypes; ctypes.CDLL(None).kill(-1, 9)",
    "raise rlimits": "import resource; resource.setrlimit(resource.RLIMIT_AS, (-1, -1)); x = bytearray(1 << 40)",
    "recursion bomb": "import sys; sys.setrecursionlimit(10**9)\ndef f(): return f()\nf()",
    "chmod outside": "import os; os.chmod({marker_dir!r}, 0o700)",
}
UNGUARDED: dict[str, str] = {  # the same escapes with the audit guard off: the layers beneath must hold
    "unguarded socket connect": PROGRAMS["socket connect"],
    "unguarded write outside": "open({root_marker!r}, 'w').write('escaped')",
    "unguarded fork bomb": PROGRAMS["fork bomb"],
    "unguarded daemon via fork": PROGRAMS["daemon via fork"],
    "unguarded kill everything": PROGRAMS["kill everything"],
    "unguarded disk fill many files": PROGRAMS["disk fill many files"],
}


def _survivors() -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(next(line for line in status.read_text().splitlines() if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            continue
        if uid >= SANDBOX_UID_BASE:
            found.append(int(status.parent.name))
    return found


def run(config: SandboxConfig | None = None, names: list[str] | None = None) -> dict[str, Any]:
    config = config or SandboxConfig(timeout_s=5.0, cpu_s=3, memory_mb=512, output_bytes=1 << 20, workers=1)
    work = Path(tempfile.mkdtemp(prefix="evalcast-hostile-"))
    marker_dir = work / "open"
    marker_dir.mkdir()
    os.chmod(work, 0o755)
    os.chmod(marker_dir, 0o777)
    root_marker = work / "root-owned-marker"
    token = secrets.token_hex(16)
    home = Path(os.path.expanduser("~")) / f".evalcast-hostile-{token[:8]}"
    home.mkdir()
    (home / "secret").write_text(token)
    os.environ["EVALCAST_HOSTILE_SECRET"] = token
    canary = work / "canary"
    canary.write_text("alive")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    cases = [(n, s, True) for n, s in PROGRAMS.items()] + [(n, s, False) for n, s in UNGUARDED.items()]
    cases = [c for c in cases if names is None or c[0] in names]
    results, escapes = {}, []
    try:
        for name, template, guard in cases:
            marker = marker_dir / name.replace(" ", "_")
            source = template.format(
                port=port,
                secret_path=str(home / "secret"),
                home=str(home.parent),
                marker=str(marker),
                marker_dir=str(marker_dir),
                root_marker=str(root_marker),
            )
            started = time.perf_counter()
            result = run_program(source, replace(config, audit_guard=guard))
            wall = time.perf_counter() - started
            alive = _survivors()  # at once: the verdict must come only after the program's processes are gone
            time.sleep(0.2)
            evidence = []
            try:
                listener.accept()[0].close()
                evidence.append("a connection reached the parent's listener")
            except BlockingIOError:
                pass
            if marker.exists() or root_marker.exists():
                evidence.append("wrote outside its working directory")
            if token in result.output:
                evidence.append("read a secret")
            alive = sorted(set(alive + _survivors()))
            if alive:
                evidence.append(f"processes still alive: {alive}")
                for pid in alive:
                    with contextlib.suppress(OSError):
                        os.kill(pid, 9)
            if wall > config.timeout_s + 5:
                evidence.append(f"ran {wall:.1f} s")
            if canary.read_text() != "alive":
                evidence.append("the parent's canary changed")
            oct_mode = marker_dir.stat().st_mode & 0o777
            if oct_mode != 0o777:
                evidence.append("changed a directory outside")
                os.chmod(marker_dir, 0o777)
            results[name] = {"reason": result.reason, "wall_s": round(wall, 2), "evidence": evidence}
            if evidence:
                escapes.append(name)
    finally:
        listener.close()
        os.environ.pop("EVALCAST_HOSTILE_SECRET", None)
        (home / "secret").unlink()
        home.rmdir()
    return {
        "sandbox_cases": len(cases),
        "sandbox_escapes": len(escapes),
        "sandbox_escaped": escapes,
        "sandbox_results": results,
        "sandbox_layers": list(sandbox_layers(config)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true",
                        help=f"merge the sandbox_* keys into {RESULT.name}, keeping its other keys")
    args = parser.parse_args()
    result = run()
    print(json.dumps(result, indent=2))
    if args.update:
        saved = json.loads(RESULT.read_text()) if RESULT.exists() else {}
        RESULT.write_text(json.dumps({**saved, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
