"""The exchange plugins share one layout and one registration style (docs/plugins.md, "The layout of
an exchange plugin"), so a newcomer copying one for a fourth venue copies the convention too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENUES = sorted(p.name.removeprefix("exchange_") for p in (ROOT / "plugins").glob("exchange_*"))
MODULES = ["config.py", "parsing.py", "feed.py", "execution.py", "plugin.py"]


def test_every_exchange_plugin_has_the_same_files():
    assert VENUES == ["binance", "bybit", "dydx"]
    for venue in VENUES:
        folder = ROOT / "plugins" / f"exchange_{venue}"
        package = folder / f"latentspeed_exchange_{venue}"
        missing = [m for m in MODULES if not (package / m).is_file()]
        assert not missing, f"{package} lacks {missing}"
        tests = [f"{venue}_testkit.py", f"test_{venue}_conformance.py", f"test_{venue}_parsing.py",
                 f"test_{venue}_sessions.py", f"test_{venue}_cli.py", "conftest.py"]  # fmt: skip
        missing = [t for t in tests if not (folder / "tests" / t).is_file()]
        assert not missing, f"{folder / 'tests'} lacks {missing}"


PROBE = """
import json, sys
from latentspeed_core.components import Component

out = {}
for venue in sys.argv[1:]:
    plugin = __import__(f"latentspeed_exchange_{venue}.plugin", fromlist=["plugin"])
    heavy = [m for m in (f"latentspeed_exchange_{venue}.feed", f"latentspeed_exchange_{venue}.execution")
             if m in sys.modules]
    got = {}
    plugin.register_feeds(register=lambda c: got.setdefault("feed", c))
    plugin.register_venues(register=lambda c: got.setdefault("venue", c))
    out[venue] = {
        "heavy_on_import": heavy,
        "feed_factory": got["feed"].factory is plugin._make_feed,
        "venue_factory": got["venue"].factory is plugin._make_venue,
        "feed_model": got["feed"].config_model.__module__,
        "venue_model": got["venue"].config_model.__module__,
        "hooks": sorted(n for n in vars(plugin) if n.startswith(("register_", "latentspeed_"))),
    }
print(json.dumps(out))
"""


def test_every_exchange_plugin_registers_the_same_way():
    """``plugin.py`` holds hooks only; each hands the core a module-level factory that imports the feed or
    the venue when called (listing plugins imports neither), with the config models from ``config.py``."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *VENUES], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for venue, seen in json.loads(proc.stdout).items():
        assert seen == {
            "heavy_on_import": [],
            "feed_factory": True,
            "venue_factory": True,
            "feed_model": f"latentspeed_exchange_{venue}.config",
            "venue_model": f"latentspeed_exchange_{venue}.config",
            "hooks": ["register_feeds", "register_venues"],
        }, venue
