"""The event bus: a subscriber that raises does not stop delivery and is reported through
the core's one error event."""

from __future__ import annotations

from app.events import ErrorReported, Event, EventBus, OutboxChanged


def test_failing_subscriber_is_reported_as_error_event_and_others_still_get_it() -> None:
    """A raising subscriber: the next one still gets the event, and all get ErrorReported."""
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        if isinstance(event, OutboxChanged):
            raise RuntimeError("view went away")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.emit(OutboxChanged(3))
    assert seen[0] == OutboxChanged(3)
    errors = [e for e in seen if isinstance(e, ErrorReported)]
    assert len(errors) == 1 and "view went away" in errors[0].message


def test_failing_error_subscriber_does_not_loop() -> None:
    """A subscriber that raises on ErrorReported itself is only logged (no endless loop)."""
    bus = EventBus()
    calls: list[Event] = []

    def always_broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("broken")

    bus.subscribe(always_broken)
    bus.emit(OutboxChanged(1))
    assert [type(e) for e in calls] == [OutboxChanged, ErrorReported]


def test_unsubscribe_twice_is_harmless() -> None:
    """The function subscribe() returns may be called twice."""
    bus = EventBus()
    seen: list[Event] = []
    unsubscribe = bus.subscribe(seen.append)
    unsubscribe()
    unsubscribe()
    bus.emit(OutboxChanged(1))
    assert seen == []
