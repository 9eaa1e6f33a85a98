"""Every hook specification is documented in docs/plugins.md (as datasette does)."""

from __future__ import annotations

import inspect
from pathlib import Path

from latentspeed_core import hookspecs

DOC = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()


def test_every_hookspec_has_a_section_and_an_example():
    names = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n != "hookspec"]
    assert names
    for name in names:
        assert f"### {name}" in DOC, f"hook {name} is not documented in docs/plugins.md"
        section = DOC.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
        assert "```python" in section, f"hook {name} has no example"


def test_every_venue_protocol_is_documented():
    """The venue contract (latentspeed_core.venue) is part of the plugin docs, member by member."""
    from typing import Protocol

    from latentspeed_core import venue

    protocols = [
        (n, c) for n, c in inspect.getmembers(venue, inspect.isclass)
        if c.__module__ == venue.__name__ and Protocol in c.__mro__ and c is not Protocol
    ]  # fmt: skip
    assert {n for n, _ in protocols} >= {"VenueListener", "BatchingVenue", "InstrumentVenue", "SimulatedVenue"}
    section = DOC.split("#### The venue contract", 1)[1].split("\n### ", 1)[0]
    for name, cls in protocols:
        assert f"`{name}`" in section, f"venue protocol {name} is not documented in docs/plugins.md"
        members = [m for m in vars(cls) if not m.startswith("_")] + list(getattr(cls, "__annotations__", {}))
        for m in members:
            assert f"`{m}" in section, f"{name}.{m} is not documented in docs/plugins.md"


def test_the_venue_test_kit_and_the_conformance_suite_are_documented():
    """Every name the test kit exports, and every check and hook of the conformance suite, is in the
    plugin docs' testing section (and exists: a renamed one fails here)."""
    from latentspeed_core import testing
    from latentspeed_core.testing import conformance

    section = DOC.split("## Testing a venue plugin", 1)[1].split("\n## Hook reference", 1)[0]
    kit = ["LoopbackWsServer", "LoopbackRestServer", "WsConnection", "ReferenceBook", "BookUpdate",
           "TradePrint", "PublishedBook", "RecordingSink", "book_levels", "running", "two_free_ports",
           "free_port", "wait_for", "async_wait_for", "fixtures_dir", "with_raw", "client_frame_text", "CUT",
           "CLOSE", "SILENT",
           "AWAIT_RESYNC"]  # fmt: skip
    for name in kit:
        assert name in testing.__all__, f"latentspeed_core.testing.{name} is documented but not exported"
        assert f"`{name}" in section, f"latentspeed_core.testing.{name} is not documented in docs/plugins.md"
    base = conformance.FeedConformance
    checks = [n for n in vars(base) if n.startswith("test_")]
    hooks = [n for n, v in vars(base).items() if callable(v) and not n.startswith(("_", "test_", "pytest_"))]
    attrs = [n for n in base.__annotations__ if not n.startswith("_")]
    assert len(checks) >= 5 and "read" in hooks and "feed_name" in attrs
    for name in checks + hooks + attrs:
        assert f"`{name}" in section, f"FeedConformance.{name} is not documented in docs/plugins.md"
