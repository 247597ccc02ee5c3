"""A replica made by the previous schema version (1) opens with this release: notifications
stored before unread tracking existed count as read, and its queued outbox entries keep
syncing with their changed fields read from their summaries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from app.replica import Replica
from app.replica import schema as replica_schema
from sync import sqlite_migrations as runner
from sync.protocol.messages import Notification, NotificationKind

DOC = "customer:6f1c2a52-0d8e-4f39-9d77-1d2e3f4a5b6c"


def _version_1_replica(path: Path) -> None:
    """A replica file exactly as schema version 1 left it, with data in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        runner.migrate(conn, replica_schema.MIGRATIONS[:1], what="replica")
        for seq in (1, 2, 3):
            conn.execute(
                "INSERT INTO notifications (seq, doc_id, kind, actor, time, fields, title) "
                "VALUES (?, ?, 'updated', 'sam', 1.0, ?, 'Ada')",
                (seq, DOC, json.dumps(["city"])))
        conn.execute('INSERT INTO outbox (doc_id, "update", created_at, summary) '
                     "VALUES (?, x'00', 1.0, 'City, Zip, notes')", (DOC,))
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_version_1_replica_marks_old_notifications_read(tmp_path: Path) -> None:
    """The three stored notifications are read after the upgrade; a new one is unread."""
    path = tmp_path / "replica.db"
    _version_1_replica(path)
    with Replica.open(path) as replica:
        assert replica.notifications(unread_only=True) == []
        assert len(replica.notifications()) == 3
        replica.add_notifications(
            [Notification(4, DOC, NotificationKind.UPDATED, "sam", 2.0, ("zip",), "Ada")],
            offline=False)
        assert [n.seq for n in replica.notifications(unread_only=True)] == [4]


def test_a_version_1_outbox_entry_names_its_fields_from_its_summary(tmp_path: Path) -> None:
    """An entry queued by version 1 (summary only) still says it changes City, Zip and
    the notes; a new entry records its parts itself."""
    path = tmp_path / "replica.db"
    _version_1_replica(path)
    with Replica.open(path) as replica:
        assert replica.pending_parts(DOC) == frozenset({"city", "zip", "notes"})
        replica.add_outbox(DOC, b"\x00", "E-mail", parts=frozenset({"email"}))
        assert replica.pending_parts(DOC) == frozenset({"city", "zip", "notes", "email"})
        assert replica.pending_parts("customer:other") == frozenset()
