"""Fixtures: a real ``redis-server`` on a free loopback port (the Debian package), per test."""

from __future__ import annotations

import pytest

from latentspeed_core.testing import redis_server_or_skip


@pytest.fixture
def redis_srv(tmp_path):
    """A started :class:`latentspeed_core.testing.RedisServer`; ``kill()`` / ``start()`` it mid-test.

    Without redis-server the test is skipped, saying why, except in CI (``CI`` set), where
    .ci/run installs it and its absence is a failure."""
    with redis_server_or_skip(tmp_path / "redis") as server:
        yield server
