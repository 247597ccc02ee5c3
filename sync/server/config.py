"""Configuration of the reference server: one frozen object, built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sync.protocol.messages import MAX_MESSAGE_SIZE

from .errors import ConfigError

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the server needs to run. Defaults are the documented production ones.

    Times are seconds; sizes are bytes.
    """

    #: A SQLite file, or a ``postgresql://`` URL (text) selecting Postgres.
    db_path: Path | str
    host: str = "127.0.0.1"
    port: int = 8765
    #: TLS: both or neither. With them the server speaks https/wss only.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    access_token_ttl: float = 900.0
    refresh_token_ttl: float = 30 * 86400.0
    #: A connection must authenticate within this many seconds (seed 001).
    auth_timeout: float = 5.0
    #: A disconnected session's subscriptions are kept this long for a resume.
    session_grace: float = 300.0
    #: The server expects some message (e.g. Heartbeat) at least this often.
    heartbeat_interval: float = 15.0
    #: ... and closes a connection silent for this long (presence expires with it).
    idle_timeout: float = 45.0
    notification_ttl: float = 24 * 3600.0
    max_message_size: int = MAX_MESSAGE_SIZE
    max_subscriptions: int = 1000
    #: Token bucket per connection: sustained messages per second, and burst size.
    rate_limit: float = 200.0
    rate_burst: int = 2000
    #: Messages a client may send before authentication completes (then: closed).
    max_pending_before_auth: int = 32
    #: Group commit: the writer commits at most this many updates per transaction.
    max_batch: int = 2000
    #: Directory feed and notification pages.
    page_size: int = 1000
    #: A loaded document nobody has used for this long is evicted from memory (no
    #: subscriber, Yjs connection or presence; everything it logged durable).
    room_idle_timeout: float = 60.0
    #: At most this many documents in memory: past it the least recently used idle ones are
    #: evicted first. Documents in use are never evicted, so this yields to them.
    max_loaded_rooms: int = 10000
    #: Admission control (reconnect storms): a new WebSocket connection is refused with
    #: ``server_busy`` (a ``retry_after`` hint) and close 1013 when this many connections are
    #: still authenticating, or when this many are open.
    max_authenticating: int = 256
    max_connections: int = 10000
    #: The ``retry_after`` of a busy refusal is drawn uniformly from [S, 2 S]: clients
    #: refused together come back spread out.
    busy_retry_after: float = 2.0
    #: Prometheus metrics on a listener of their own (sync/server/metrics.py); None: off.
    #: Never the public port: customer users must not reach them.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: This node's name in a cluster (Postgres: the log records which node wrote a row).
    node_id: str = ""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"TLS file not found: {path}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port must be 0-65535, not {self.metrics_port}")
        positive = (
            "access_token_ttl", "refresh_token_ttl", "auth_timeout", "session_grace",
            "heartbeat_interval", "idle_timeout", "notification_ttl", "max_message_size",
            "max_subscriptions", "rate_limit", "rate_burst", "max_batch", "page_size",
            "room_idle_timeout", "max_loaded_rooms", "max_authenticating", "max_connections",
            "busy_retry_after",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be positive")

    @property
    def scheme(self) -> str:
        """``https`` when TLS is configured, else ``http``."""
        return "https" if self.tls_cert else "http"
