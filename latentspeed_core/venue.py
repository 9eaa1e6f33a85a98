"""The execution-venue contract: order entry for the engine.

A venue keeps its own connection (reconnecting with backoff) and reports
everything through a :class:`VenueListener`. ``send_*`` calls never block: they
encode and write, and results come back as execution reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from pydantic import BaseModel

from .types import ExecutionReport, Order


class VenueListener(Protocol):
    def on_execution_report(self, report: ExecutionReport) -> None: ...

    def on_venue_connected(self) -> None: ...

    def on_venue_disconnected(self, reason: str) -> None: ...


class Venue(ABC):
    #: Upper-case venue name (``MOCK``).
    name: str = ""

    def __init__(self, config: BaseModel) -> None:
        self.config = config
        self.connected = False

    @abstractmethod
    async def run(self, listener: VenueListener) -> None:
        """Connect and stay connected until cancelled; reconnect with backoff and jitter."""

    @abstractmethod
    def send_new_order(self, order: Order) -> None:
        """Write a new order; raises ``ConnectionError`` when not connected."""

    @abstractmethod
    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        """Write a cancel request for ``orig_cl_ord_id``."""
