#!/usr/bin/env python3
"""Set up a development environment and run latentspeed or its tests, in one command.

    python3 dev.py run [latentspeed run options]   # set up, then `latentspeed run`
    python3 dev.py test [pytest options]           # set up, then the whole test suite
                                                   # (installs redis-server when missing, as root)
    python3 dev.py setup                           # only set up

Setup creates ./.venv (stdlib venv) and installs the core and every plugin under
plugins/ in editable mode, one line per step; pip's full output goes to .venv/setup.log
(shown when a step fails). It is skipped when nothing it depends on has changed.
Needs only Python 3.11+ (with a C compiler, as here, the compiled order book is built;
without one the install still works and uses the pure-Python book).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".latentspeed-setup"
LOG = VENV / "setup.log"
#: Lines of the log shown when a step fails (the whole log stays in LOG).
FAIL_TAIL = 60


def plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def plugin_extras(d: Path) -> list[str]:
    """The optional-dependency groups a plugin declares (installed for development and tests)."""
    import tomllib

    data = tomllib.loads((d / "pyproject.toml").read_text())
    return sorted(data.get("project", {}).get("optional-dependencies", {}))


def fingerprint() -> str:
    h = hashlib.sha256()
    # setup.py and the C sources too: an editable install does not rebuild an extension by itself
    dists = [ROOT, *plugin_dirs()]
    files = [p for d in dists for p in (d / "pyproject.toml", d / "setup.py") if p.exists()]
    files += sorted(p for d in dists for ext in ("c", "h") for p in d.glob(f"latentspeed_*/*.{ext}"))
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode() + p.read_bytes())
    return h.hexdigest()


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py must run on old Pythons to say so
        sys.exit(f"latentspeed needs Python 3.11+, this is {sys.version.split()[0]}")
    fp = fingerprint()
    if STAMP.exists() and STAMP.read_text() == fp:
        return
    if not (BIN / "python").exists():
        print(f"dev.py: creating {VENV.relative_to(ROOT)} ...", end=" ", flush=True)
        venv.create(VENV, with_pip=True)
        print("done", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "install"]
    args = ["-e", f"{ROOT}[test,analysis,bench]"]
    for d in plugin_dirs():
        extras = plugin_extras(d)  # e.g. dydx's `trade`: the suite tests every part of every plugin
        args += ["-e", f"{d}[{','.join(extras)}]" if extras else str(d)]
    with LOG.open("w") as log:
        # setuptools>=77 reads the SPDX license form the pyprojects use (PEP 639).
        step("updating pip and setuptools", [*pip, "-U", "pip", "setuptools>=77", "wheel"], log)
        step(f"installing latentspeed-core and {len(plugin_dirs())} plugins (editable)", [*pip, *args], log)
    STAMP.write_text(fp)


def step(title: str, cmd: list[str], log: IO[str]) -> None:
    """Run one set-up command: one line here, its whole output in LOG; on failure, show the end."""
    print(f"dev.py: {title} ...", end=" ", flush=True)
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    t0 = time.monotonic()
    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    log.flush()
    if rc == 0:
        print(f"done ({time.monotonic() - t0:.0f} s)", flush=True)
        return
    print("failed", flush=True)
    lines = LOG.read_text(errors="replace").splitlines()
    sys.stderr.write("\n".join(lines[-FAIL_TAIL:]) + "\n")
    sys.exit(f"dev.py: {title} failed (exit {rc}); full log: {LOG}")


def ensure_redis_server() -> None:
    """The Redis sink tests start a real ``redis-server`` (the Debian package): install it when
    missing and this runs as root with apt-get; otherwise say how (those tests skip without it)."""
    import shutil

    if shutil.which("redis-server"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("dev.py: installing redis-server (apt-get) ...", end=" ", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        with LOG.open("a") as log:
            ok = all(subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode == 0
                     for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]))  # fmt: skip
        print("done" if ok else f"failed (see {LOG})", flush=True)
        if ok:
            return
    print("dev.py: redis-server not found: the Redis tests will skip (install: sudo apt-get install redis-server)")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "setup"}:
        print(__doc__)
        return 2
    setup()
    cmd, rest = argv[0], argv[1:]
    if cmd == "setup":
        return 0
    if cmd == "run":
        exe = [str(BIN / "latentspeed"), "run", *rest]
    else:
        ensure_redis_server()
        exe = [str(BIN / "python"), "-m", "pytest", *rest]
    os.chdir(ROOT)
    return subprocess.call(exe)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
