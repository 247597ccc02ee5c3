"""A bus handler for tests that keeps what it gets (unit and Postgres bus tests)."""

from __future__ import annotations

from sync.server.bus import BusEvent, UpdatesCommitted


class Recorder:
    """A bus handler that keeps what it gets."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.resyncs = 0

    def on_event(self, event: BusEvent) -> None:
        self.events.append(event)

    def on_resync(self) -> None:
        self.resyncs += 1

    def updates(self) -> dict[str, int]:
        """The highest committed sequence signalled per document."""
        latest: dict[str, int] = {}
        for e in self.events:
            if isinstance(e, UpdatesCommitted):
                latest[e.doc_id] = max(e.seq, latest.get(e.doc_id, 0))
        return latest
