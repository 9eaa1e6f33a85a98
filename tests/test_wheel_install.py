"""``pip install latentspeed-exchange-bybit`` as a user would: wheels into a brand-new venv.

Builds the wheels of the core and of the Bybit adapter, installs them (dependencies from the
package index) into a fresh virtual environment, then checks that the installed ``latentspeed``
lists exactly the core and ``bybit``, and that the installed adapter builds a correct book
from a local server speaking Bybit's protocol. One venv for the whole module: one install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_registry  # installs dependencies from the package index

ROOT = Path(__file__).resolve().parent.parent
BYBIT = ROOT / "plugins" / "exchange_bybit"
KIT = BYBIT / "tests" / "bybit_testkit.py"
SESSION = (
    ROOT / "fixtures" / "bybit" / "seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"
)

_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "tests", ".venv", "*.pyc")


def _run(*cmd, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LATENTSPEED_PLUGINS"}  # list what is installed
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )
    assert proc.returncode == 0, (
        f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _copy_source(src: Path, dst: Path, package: str) -> Path:
    """Copy just what the build needs, so building never writes into the shared working tree."""
    dst.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(src / name, dst / name)
    shutil.copytree(src / package, dst / package, ignore=_IGNORE)
    return dst


@pytest.fixture(scope="module")
def bybit_wheel_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel_install")
    wheels = tmp / "wheels"
    core_src = _copy_source(ROOT, tmp / "src" / "core", "latentspeed_core")
    bybit_src = _copy_source(BYBIT, tmp / "src" / "bybit", "latentspeed_exchange_bybit")
    for src in (core_src, bybit_src):
        # --no-build-isolation: build with this environment's setuptools instead of fetching one
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src)
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in built] == ["latentspeed_core", "latentspeed_exchange_bybit"], built
    env_dir = tmp / "venv"
    _run(sys.executable, "-m", "venv", env_dir)
    _run(env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", *sorted(wheels.glob("*.whl")))
    return env_dir


def test_installed_plugins_are_core_and_bybit_only(bybit_wheel_venv):
    proc = _run(bybit_wheel_venv / "bin" / "latentspeed", "plugins", "--json", timeout=120)
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert set(plugins) == {"core", "bybit"}
    assert plugins["bybit"]["distribution"] == "latentspeed-exchange-bybit"
    assert plugins["bybit"]["components"] == {"feeds": ["bybit"], "venues": ["bybit"]}
    assert plugins["bybit"]["hooks"] == ["register_feeds", "register_venues"]


CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from latentspeed_core.config import validate
    from latentspeed_core.testing import async_wait_for
    from latentspeed_core.plugins import load_registry

    url, last_u = sys.argv[1], int(sys.argv[2])
    feeds = load_registry().feeds
    comp = feeds["bybit"]
    config = validate(comp.config_model, {"exchange": "bybit", "symbols": ["XRP-USDT"], "depth": 500, "ws_url": url})
    feed = comp.factory(config)

    class Sink:
        books = 0
        def on_book(self, feed, symbol, book, ts, rx):
            self.books += 1
        def on_trade(self, feed, trade):
            pass

    async def main():
        sink = Sink()
        task = asyncio.create_task(feed.run(sink))
        await async_wait_for(
            lambda: feed.books["XRP-USDT"].last_u == last_u or task.done(), 20, "the session's last delta"
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        book = feed.books["XRP-USDT"].book
        print(json.dumps({
            "module": type(feed).__module__,
            "file": sys.modules[type(feed).__module__].__file__,
            "last_u": feed.books["XRP-USDT"].last_u,
            "best_bid": book.best_bid(), "best_ask": book.best_ask(),
            "bids": book.top_bids(1000), "asks": book.top_asks(1000),
            "published": sink.books, "errors": feed.stats.errors,
        }))

    asyncio.run(main())
    """
)


def _expected(frames: list[dict]):
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    for f in frames:
        if f["type"] == "snapshot":
            bids.clear()
            asks.clear()
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in f["data"][key]:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
    return (
        [[float(p), float(bids[p])] for p in sorted(bids, reverse=True)],
        [[float(p), float(asks[p])] for p in sorted(asks)],
    )


def test_installed_adapter_builds_the_book_from_a_local_bybit_server(bybit_wheel_venv, tmp_path):
    frames = [json.loads(line) for line in SESSION.read_text().splitlines() if line.strip()]
    script = tmp_path / "session.json"
    script.write_text(json.dumps({"market": "linear", "sessions": [frames]}))
    server = subprocess.Popen(
        [sys.executable, str(KIT), str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().strip()  # the server prints its URL once listening
        assert url.startswith("ws://127.0.0.1:"), server.stderr.read() if server.poll() is not None else url
        client = tmp_path / "client.py"
        client.write_text(CLIENT)
        proc = _run(
            bybit_wheel_venv / "bin" / "python",
            client,
            url,
            frames[-1]["data"]["u"],
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(bybit_wheel_venv)), result[
        "file"
    ]  # the installed wheel, not the source tree
    assert result["last_u"] == frames[-1]["data"]["u"]
    bids, asks = _expected(frames)
    assert result["bids"] == bids and result["asks"] == asks
    assert result["best_bid"] == bids[0] and result["best_ask"] == asks[0]
    assert result["published"] == len(frames) and result["errors"] == 0
