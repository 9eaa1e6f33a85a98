#!/usr/bin/env python3
"""Set up a development environment and run latentspeed or its tests, in one command.

    python3 dev.py run [latentspeed run options]   # set up, then `latentspeed run`
    python3 dev.py test [pytest options]           # set up, then the whole test suite
    python3 dev.py setup                           # only set up

Setup creates ./.venv (stdlib venv) and installs the core and every plugin under
plugins/ in editable mode. It is skipped when nothing it depends on has changed.
Needs only Python 3.11+ (with a C compiler, as here, the compiled order book is built;
without one the install still works and uses the pure-Python book).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".latentspeed-setup"


def plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def fingerprint() -> str:
    h = hashlib.sha256()
    # setup.py and the C sources too: an editable install does not rebuild an extension by itself
    dists = [ROOT, *plugin_dirs()]
    files = [p for d in dists for p in (d / "pyproject.toml", d / "setup.py") if p.exists()]
    files += sorted(p for d in dists for p in d.glob("latentspeed_*/*.c"))
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
        print(f"dev.py: creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    print("dev.py: installing latentspeed-core and plugins (editable)", flush=True)
    subprocess.run([*pip, "install", "-q", "-U", "pip", "setuptools>=64", "wheel"], check=True)
    args = ["-e", f"{ROOT}[test,analysis,bench]"]
    for d in plugin_dirs():
        args += ["-e", str(d)]
    subprocess.run([*pip, "install", "-q", *args], check=True)
    STAMP.write_text(fp)


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
        exe = [str(BIN / "python"), "-m", "pytest", *rest]
    os.chdir(ROOT)
    return subprocess.call(exe)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
