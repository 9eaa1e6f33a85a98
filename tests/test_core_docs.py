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
