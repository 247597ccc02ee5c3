"""Prometheus metrics of a server node, on a listener of their own.

The metrics are for the operators' Prometheus, not for customer users: they are served only
when ``--metrics-port`` is given, on a separate listener (``--metrics-host``, 127.0.0.1 by
default) that the load balancer never forwards to; the public port has no ``/metrics``
(and docs/deploy/haproxy.cfg denies the path as well).

What a node exports (names as Prometheus shows them):

===================================== ========= =========================================
``liveedit_connections``              gauge     open WebSocket connections (/ws and /yjs)
``liveedit_sessions``                 gauge     sessions known (connected or in grace)
``liveedit_loaded_rooms``             gauge     documents in memory
``liveedit_updates_accepted_total``   counter   changes accepted (logged, fanned out)
``liveedit_updates_acked_total``      counter   changes durably committed (so acked)
``liveedit_commit_seconds``           histogram one group-commit transaction, BEGIN to
                                                durable COMMIT
``liveedit_fanout_frames_total``      counter   update frames handed to subscribers
``liveedit_refused_connections_total`` counter  connections refused by admission control
``liveedit_bus_listening``            gauge     1 while events from other nodes arrive
``liveedit_bus_events_total``         counter   bus events, ``direction`` sent/received
``liveedit_bus_lag_seconds``          histogram publish-to-receive time of bus events
===================================== ========= =========================================

Counters that the server keeps anyway (the hub's stats, admission's refusals) are read when
Prometheus scrapes, so the hot path pays nothing for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MetricsServer", "ServerMetrics"]

log = logging.getLogger(__name__)

_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """The metrics of one server process (its own registry: several apps in one test
    process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates_acked = Counter(
            "liveedit_updates_acked", "Changes durably committed (each one acked).",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "liveedit_commit_seconds",
            "One group-commit transaction, from BEGIN to durable COMMIT, seconds.",
            buckets=_COMMIT_BUCKETS, registry=self.registry,
        )
        self.bus_lag_seconds = Histogram(
            "liveedit_bus_lag_seconds",
            "Time from publishing a bus event on one node to receiving it on another.",
            buckets=_LAG_BUCKETS, registry=self.registry,
        )

    def observe_commit(self, updates: int, seconds: float) -> None:
        """A transaction holding ``updates`` changes committed in ``seconds`` (any thread)."""
        self.commit_seconds.observe(seconds)
        if updates:
            self.updates_acked.inc(updates)

    def observe_bus_lag(self, seconds: float) -> None:
        """A bus event arrived ``seconds`` after it was published."""
        self.bus_lag_seconds.observe(seconds)

    def watch(self, read: Callable[[], dict[str, float]]) -> None:
        """Export live values read at scrape time. ``read()`` returns any of the keys
        ``connections``, ``sessions``, ``loaded_rooms``, ``updates_accepted``,
        ``fanout_frames``, ``refused_connections``, ``bus_listening``, ``bus_sent``,
        ``bus_received``."""
        self.registry.register(_LiveCollector(read))


class _LiveCollector(Collector):
    """Values the server keeps anyway, read when Prometheus scrapes."""

    _GAUGES: ClassVar[dict[str, str]] = {
        "connections": "Open WebSocket connections (/ws and /yjs).",
        "sessions": "Sessions known to this node (connected, or within their grace period).",
        "loaded_rooms": "Documents loaded in memory.",
        "bus_listening": "1 while this node receives events from the other nodes.",
    }
    _COUNTERS: ClassVar[dict[str, str]] = {
        "updates_accepted": "Changes accepted (logged and fanned out).",
        "fanout_frames": "Update frames handed to subscribers.",
        "refused_connections": "Connections refused by admission control (server busy).",
    }

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        values = self.read()
        for key, text in self._GAUGES.items():
            if key in values:
                yield GaugeMetricFamily(f"liveedit_{key}", text, value=values[key])
        for key, text in self._COUNTERS.items():
            if key in values:
                yield CounterMetricFamily(f"liveedit_{key}", text, value=values[key])
        if "bus_sent" in values or "bus_received" in values:
            family = CounterMetricFamily(
                "liveedit_bus_events", "Events on the bus between nodes.",
                labels=["direction"],
            )
            family.add_metric(["sent"], values.get("bus_sent", 0.0))
            family.add_metric(["received"], values.get("bus_received", 0.0))
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())  # values are read at scrape time only


class MetricsServer:
    """The metrics listener (a thread of prometheus_client's own HTTP server)."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.requested_port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the metrics listener is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where Prometheus scrapes this node."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and serve in a daemon thread; OSError if the address is unusable."""
        server, thread = start_http_server(
            self.requested_port, self.host, registry=self.metrics.registry
        )
        self._server, self._thread = server, thread
        log.info("metrics on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
