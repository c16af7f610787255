"""Which sandbox layers work on this machine (probed once) and the command line that applies them.

A layer is used only if the interpreter, started under it, still loads its own standard library and can
read the sandbox child (an unreadable install can make Python fall back silently to another one, e.g.
``/usr/lib``). See :mod:`evalcast.generate.sandbox` for what each layer contains.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Sandboxed programs run as uid ``SANDBOX_UID_BASE + k`` when evalcast runs as root.
SANDBOX_UID_BASE = 1 << 30
CHILD = Path(__file__).with_name("_sandbox_child.py")


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not a verdict on the program)."""


@dataclass(frozen=True)
class _Plan:
    prefix: tuple[str, ...]
    """``unshare ...`` (and, with the mount layer, the ``sh -c`` script that hides directories)."""
    drop_uid: bool
    read_cap: bool
    layers: tuple[str, ...]

    def command(self, uid: int | None, python: str) -> list[str]:
        return [*self.prefix, *(setpriv(uid, self.read_cap) if uid is not None else ()), python, "-I", str(CHILD)]


def setpriv(uid: int, read_cap: bool) -> list[str]:
    caps = "-all,+dac_read_search" if read_cap else "-all"
    cmd = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
           "--no-new-privs", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    return cmd + (["--ambient-caps=+dac_read_search"] if read_cap else [])


def env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


def hiding_script(keep: list[str]) -> list[str] | None:
    """``sh -c`` arguments that, run as root in a fresh mount namespace, cover each directory above a
    path in ``keep`` that others cannot enter (``/root``, ``/home/USER``) with an empty tmpfs and bind
    that path back in, read-only, then exec the rest of the command line. The working directory serves
    as a staging point and is left as it was. None when nothing needs hiding or a path cannot be kept."""
    keep = sorted({os.path.realpath(p) for p in keep})
    keep = [p for p in keep if not any(p.startswith(q + os.sep) for q in keep)]
    covers: dict[str, str] = {}
    for path in keep:
        parts = Path(path).parts
        try:
            closed = next((str(Path(*parts[:i])) for i in range(2, len(parts) + 1)
                           if not os.stat(Path(*parts[:i])).st_mode & stat.S_IXOTH), None)
        except OSError:
            return None
        if closed == path:
            return None  # the path itself is closed to others: binding it back would not help
        if closed is not None:
            covers[path] = closed
    if not covers:
        return None
    q = shlex.quote
    lines = ["set -e", "umask 022", 'stage=$(pwd -P)', 'mount -t tmpfs -o mode=700 evalcast-stage "$stage"']
    for i, path in enumerate(covers):
        lines += [f'mkdir "$stage/{i}"', f'mount --bind {q(path)} "$stage/{i}"']
    for top in sorted(set(covers.values())):
        lines.append(f"mount -t tmpfs -o mode=755,nosuid,nodev evalcast-hidden {q(top)}")
    for i, path in enumerate(covers):
        lines += [f"mkdir -p {q(path)}", f'mount --bind "$stage/{i}" {q(path)}',
                  f"mount -o remount,bind,ro {q(path)}"]
    lines += ['umount -R "$stage"', 'exec "$@"']
    return ["sh", "-c", "\n".join(lines), "sh"]


def _probe(cmd: list[str]) -> str | None:
    """What ``cmd`` (ending in a ``python -I -c`` probe) prints, run in a fresh directory; None if it fails."""
    workdir = tempfile.mkdtemp(prefix="evalcast-probe-")
    try:
        os.chmod(workdir, 0o755)
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, text=True,
                              cwd=workdir, env=env(workdir))
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def plan(namespaces: bool, drop_privileges: bool, python: str) -> _Plan:
    """Probe each layer once, strongest first, and keep those that work."""
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"code execution needs Linux (process groups, rlimits, pidfd); this is {sys.platform}")
    probe = [python, "-I", "-c", f"import os, sys, json; open({str(CHILD)!r}).close(); "
                                 "print(json.dumps([os.__file__, sys.prefix, sys.base_prefix]))"]
    reference = _probe(probe)
    if reference is None:
        raise SandboxError(f"{python} -I does not start; set SandboxConfig(python=...) to a working interpreter")
    root = os.geteuid() == 0
    prefix: list[str] = []
    layers: list[str] = []
    unshare = shutil.which("unshare")
    if namespaces and unshare:
        candidate = [unshare, "--net", "--pid", "--fork", "--kill-child"] + ([] if root else ["--map-root-user"])
        if _probe(candidate + probe) == reference:
            prefix = candidate
            layers += ["net namespace", "pid namespace"] + ([] if root else ["user namespace"])
    drop_uid = read_cap = False
    if root and drop_privileges and shutil.which("setpriv"):
        script = hiding_script(json.loads(reference)[1:]) if prefix and shutil.which("mount") else None
        hidden = [prefix[0], "--mount", "--propagation", "private", *prefix[1:], *script] if script else None
        for with_prefix, cap, extra in ((prefix, False, []), (hidden, False, ["mount namespace"]),
                                        (prefix, True, ["read-anywhere capability"])):
            if with_prefix is not None and _probe(with_prefix + setpriv(SANDBOX_UID_BASE, cap) + probe) == reference:
                prefix, drop_uid, read_cap = with_prefix, True, cap
                layers += ["unprivileged uid", *extra]
                break
    layers += ["rlimits", "process group kill", "isolated python", "throwaway cwd", "cleared env"]
    return _Plan(tuple(prefix), drop_uid, read_cap, tuple(layers))
