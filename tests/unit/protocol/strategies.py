"""Hypothesis strategies for every wire message, built from each class's field domains.

``MESSAGES`` maps every message class the decoder knows to a strategy of valid instances;
``test_messages`` checks that it covers the decoder's registry exactly, so a new message
without a strategy fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from sync.protocol import schema
from sync.protocol.errors import ErrorCode
from sync.protocol.messages import (
    DIRECTORY_FEED,
    Ack,
    Authenticate,
    DirectoryChanges,
    DirectoryEntry,
    DirectoryPage,
    DirectoryRows,
    DirectorySubscribe,
    Error,
    Heartbeat,
    HeartbeatAck,
    Message,
    Notification,
    NotificationKind,
    Notifications,
    Presence,
    PresenceChanged,
    ReadNotifications,
    RemoteUpdate,
    RenewToken,
    Subscribe,
    Subscribed,
    SyncStep1,
    SyncStep2,
    TokenRenewed,
    Unsubscribe,
    Update,
    Welcome,
)

INT64 = 2**63 - 1

uuids = st.uuids(version=4).map(str)
doc_ids = uuids.map(lambda u: f"customer:{u}")
sub_ids = st.one_of(doc_ids, st.just(DIRECTORY_FEED))
session_ids = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
seqs = st.integers(0, INT64)
finite = st.floats(allow_nan=False, allow_infinity=False)
payloads = st.binary(max_size=64)
names = st.text(max_size=128)


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Strings of at most ``max_size`` code points, sometimes exactly ``max_size`` long.

    Hypothesis never draws surrogates, which MessagePack could not encode.
    """
    at_limit = st.characters(exclude_categories=["Cs"]).map(lambda c: c * max_size)
    return st.text(max_size=min(max_size, 80)) | at_limit


def tuples(inner: st.SearchStrategy[Any], max_size: int = 5) -> st.SearchStrategy[Any]:
    """Tuples, as the decoder returns every list field."""
    return st.lists(inner, max_size=max_size).map(tuple)


presence_values = st.one_of(
    st.none(), st.booleans(), st.integers(-INT64, INT64), finite, st.text(max_size=256),
)
presence_states = st.dictionaries(st.text(max_size=64), presence_values, max_size=16)

notifications = st.builds(
    Notification,
    seq=seqs,
    doc=doc_ids,
    kind=st.sampled_from(NotificationKind),
    actor=names,
    time=finite,
    fields=tuples(st.text(max_size=64)),
    title=st.none() | texts(512),
)

directory_entries = st.builds(
    DirectoryEntry,
    uuids,
    st.builds(lambda values: dict(zip(
        [f.name for f in schema.directory_fields()], values, strict=True
    )), st.tuples(*(st.none() | st.text(max_size=40) for _ in schema.directory_fields()))),
    updated_at=finite,
    deleted=st.booleans(),
    cursor=seqs,
)

MESSAGES: dict[type[Message], st.SearchStrategy[Any]] = {
    Authenticate: st.builds(
        Authenticate,
        versions=tuples(st.integers(1, 65535), 16),
        token=texts(8192),
        session_id=session_ids,
        client=texts(200),
    ),
    Welcome: st.builds(
        Welcome,
        version=st.integers(1, 65535),
        session_id=session_ids,
        user=names,
        role=st.text(max_size=32),
        customer_id=st.none() | uuids,
        resumed=st.booleans(),
        subscriptions=tuples(sub_ids),
        token_expires_at=finite,
        heartbeat_interval=finite,
        max_message_size=st.integers(1, INT64),
        max_subscriptions=st.integers(1, INT64),
        server_time=finite,
    ),
    RenewToken: st.builds(RenewToken, token=texts(8192)),
    TokenRenewed: st.builds(TokenRenewed, token_expires_at=finite),
    Subscribe: st.builds(Subscribe, docs=tuples(sub_ids)),
    Subscribed: st.builds(Subscribed, docs=tuples(sub_ids)),
    Unsubscribe: st.builds(Unsubscribe, docs=tuples(sub_ids)),
    SyncStep1: st.builds(SyncStep1, doc=doc_ids, state_vector=payloads),
    SyncStep2: st.builds(SyncStep2, doc=doc_ids, update=payloads, seq=seqs),
    Update: st.builds(Update, doc=doc_ids, ref=seqs, update=payloads),
    RemoteUpdate: st.builds(
        RemoteUpdate, doc=doc_ids, seq=seqs, update=payloads, author=names, time=finite,
    ),
    Ack: st.builds(Ack, doc=doc_ids, ref=seqs, seq=seqs),
    Presence: st.builds(Presence, doc=doc_ids, state=st.none() | presence_states),
    PresenceChanged: st.builds(
        PresenceChanged,
        doc=doc_ids,
        session_id=session_ids,
        user=names,
        state=st.none() | presence_states,
    ),
    Notification: notifications,
    ReadNotifications: st.builds(
        ReadNotifications, since=seqs, limit=st.integers(1, 5000),
    ),
    Notifications: st.builds(
        Notifications, items=tuples(notifications, 3), latest=seqs, more=st.booleans(),
    ),
    DirectorySubscribe: st.builds(DirectorySubscribe, cursor=seqs),
    DirectoryChanges: st.builds(
        DirectoryChanges,
        entries=tuples(directory_entries, 3),
        cursor=seqs,
        more=st.booleans(),
    ),
    DirectoryPage: st.builds(
        DirectoryPage,
        rows=tuples(directory_entries, 3).map(DirectoryRows.of),
        cursor=seqs,
        more=st.booleans(),
    ),
    Error: st.builds(
        Error,
        code=st.sampled_from(ErrorCode),
        message=texts(1000),
        ref=st.none() | seqs,
        doc=st.none() | sub_ids,
        retry_after=st.none() | finite,
    ),
    Heartbeat: st.builds(Heartbeat, nonce=seqs),
    HeartbeatAck: st.builds(HeartbeatAck, nonce=seqs),
}

#: Any valid message of any kind.
any_message: st.SearchStrategy[Message] = st.one_of(*MESSAGES.values())


def by_kind(classes: Iterable[type[Message]]) -> list[type[Message]]:
    """Message classes sorted by kind number (stable test ids and order)."""
    return sorted(classes, key=lambda cls: int(cls.KIND))
