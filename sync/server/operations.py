"""What operators and load balancers see of a node: readiness, metrics, and its bus.

:func:`install_operations` is called once by ``app.create_app``; it adds ``GET /readyz``
(health.py), builds the node's metrics (metrics.py, served on their own listener when
``--metrics-port`` is set) and the node's bus (bus.py). The returned :class:`Operations`
is started and stopped by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from fastapi import FastAPI

from .bus import Bus, BusHandler, LocalBus, SingleNode
from .cluster import ClusterLink
from .config import ServerConfig
from .health import install_readiness
from .hub import SyncHub
from .metrics import MetricsServer, ServerMetrics

__all__ = ["Operations", "install_operations"]

log = logging.getLogger(__name__)

#: A customer id no customer has: reading its directory row proves the database answers.
_PROBE_ID = "00000000-0000-0000-0000-000000000000"


class Operations:
    """A node's bus, metrics and readiness (one per app)."""

    def __init__(self, config: ServerConfig, hub: SyncHub, connections: Collection[object],
                 admission: object, bus: Bus | None = None) -> None:
        self.config = config
        self.hub = hub
        self.connections = connections
        self.admission = admission
        #: LocalBus until start() opens the engine's (it needs the started engine).
        self.bus: Bus = bus or LocalBus()
        self._own_bus = bus is None
        self.metrics = ServerMetrics()
        self.metrics_server: MetricsServer | None = None
        if config.metrics_port is not None:
            self.metrics_server = MetricsServer(
                self.metrics, config.metrics_host, config.metrics_port
            )
        hub.engine.observe_commits(self.metrics.observe_commit)
        self.bus.on_lag = self.metrics.observe_bus_lag
        self.metrics.watch(self._live_values)

    def _live_values(self) -> dict[str, float]:
        hub, bus = self.hub, self.bus
        return {
            "connections": len(self.connections),
            "sessions": len(hub.sessions),
            "loaded_rooms": len(hub.rooms),
            "updates_accepted": hub.stats["updates"],
            "fanout_frames": hub.stats["fanout_frames"],
            "refused_connections": getattr(self.admission, "refused", 0),
            "bus_listening": 1.0 if bus.listening else 0.0,
            "bus_sent": bus.published,
            "bus_received": bus.received,
        }

    async def check_database(self) -> str | None:
        """Readiness: the writer has not failed and a read answers."""
        engine = self.hub.engine
        if engine.failed is not None:
            return "the database refused a write; see the server log"
        try:
            await engine.directory_row(_PROBE_ID)
        except Exception as exc:  # any engine's error: the answer is 503, not a 500
            log.warning("readiness: the database cannot be read: %s", exc)
            return "the database cannot be read; see the server log"
        return None

    async def check_bus(self) -> str | None:
        """Readiness: events from the other nodes arrive."""
        return None if self.bus.listening else "the bus is not listening"

    async def start(self) -> None:
        """Start the metrics listener and the bus (the app's lifespan)."""
        if self.metrics_server is not None:
            self.metrics_server.start()
        if self._own_bus:
            self.bus = self.hub.engine.open_bus()
            self.bus.on_lag = self.metrics.observe_bus_lag
        handler: BusHandler = SingleNode()
        if self.bus.capabilities.cross_node:
            self.hub.cluster = ClusterLink(self.hub, self.bus)
            handler = self.hub.cluster
        await self.bus.start(handler)

    async def stop(self) -> None:
        """Stop the bus and the metrics listener."""
        await self.bus.close()
        if self.hub.cluster is not None:
            await self.hub.cluster.close()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)


def install_operations(app: FastAPI, config: ServerConfig, hub: SyncHub,
                       connections: Collection[object], admission: object) -> Operations:
    """Build the node's operations, add ``/readyz``; keep them as ``app.state.operations``."""
    operations = Operations(config, hub, connections, admission)
    install_readiness(app, {
        "database": operations.check_database, "bus": operations.check_bus,
    })
    app.state.operations = operations
    return operations
