"""Tasks and comments of a customer document (DESIGN.md, "The customer document").

- ``tasks`` (Map): task id → Map ``{title, done, order}``. Order is a float; a reorder sets
  one task's order between its new neighbours, so concurrent reorders never duplicate or
  lose a task (ties break by task id).
- ``comments`` (Array): append-only Maps ``{id, author, time, text}``.

Functions that write take an open document; call them inside the caller's transaction
when several writes belong together. :mod:`sync.protocol.document` re-exports them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from .errors import InvalidFieldValue
from .layout import roots

__all__ = [
    "MAX_COMMENT_LENGTH",
    "MAX_TASK_TITLE",
    "Comment",
    "Task",
    "add_comment",
    "add_task",
    "delete_task",
    "edit_task",
    "move_task",
    "read_comments",
    "read_tasks",
]

MAX_COMMENT_LENGTH = 10_000
MAX_TASK_TITLE = 500


@dataclass(frozen=True, slots=True)
class Task:
    """A follow-up task as read from the document."""

    id: str
    title: str
    done: bool
    order: float


def read_tasks(doc: Doc[Any]) -> list[Task]:
    """Tasks in display order (by order, then id: the same on every replica)."""
    tasks = []
    for task_id, value in (roots(doc).tasks.to_py() or {}).items():
        if not isinstance(value, dict):
            continue
        order = value.get("order", 0.0)
        tasks.append(Task(
            id=task_id,
            title=str(value.get("title", "")),
            done=bool(value.get("done", False)),
            order=float(order) if isinstance(order, int | float) else 0.0,
        ))
    tasks.sort(key=lambda t: (t.order, t.id))
    return tasks


def add_task(doc: Doc[Any], title: str, task_id: str | None = None) -> str:
    """Append a task at the end of the list; returns its id."""
    title = _check_task_title(title)
    existing = read_tasks(doc)
    order = existing[-1].order + 1.0 if existing else 1.0
    task_id = task_id or uuid.uuid4().hex
    roots(doc).tasks[task_id] = Map({"title": title, "done": False, "order": order})
    return task_id


def _task(doc: Doc[Any], task_id: str) -> Map[Any]:
    task = roots(doc).tasks.get(task_id)
    if not isinstance(task, Map):
        raise InvalidFieldValue("task", f"no task {task_id!r} on this customer")
    return task


def edit_task(doc: Doc[Any], task_id: str, *, title: str | None = None,
              done: bool | None = None) -> None:
    """Change a task's title and/or done flag."""
    task = _task(doc, task_id)
    checked = _check_task_title(title) if title is not None else None
    with doc.transaction():
        if checked is not None:
            task["title"] = checked
        if done is not None:
            task["done"] = bool(done)


def delete_task(doc: Doc[Any], task_id: str) -> None:
    """Remove a task."""
    _task(doc, task_id)
    del roots(doc).tasks[task_id]


def move_task(doc: Doc[Any], task_id: str, index: int) -> None:
    """Move a task to position ``index`` of the display order (clamped).

    Only the moved task's order changes (to a value between its new neighbours), so a
    concurrent move of the same task resolves to one place and moves of different tasks
    both apply: never a duplicate, never a loss.
    """
    task = _task(doc, task_id)
    others = [t for t in read_tasks(doc) if t.id != task_id]
    index = max(0, min(index, len(others)))
    before = others[index - 1].order if index > 0 else None
    after = others[index].order if index < len(others) else None
    if before is None and after is None:
        order = 1.0
    elif before is None:
        order = after - 1.0  # type: ignore[operator]
    elif after is None:
        order = before + 1.0
    else:
        order = (before + after) / 2.0
    task["order"] = order


def _check_task_title(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidFieldValue("task", "a task needs a title")
    if len(title) > MAX_TASK_TITLE:
        raise InvalidFieldValue("task", f"a task title is at most {MAX_TASK_TITLE} characters")
    return title.strip()


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment in a customer's thread."""

    id: str
    author: str
    time: float
    text: str


def add_comment(doc: Doc[Any], author: str, text: str, time: float) -> str:
    """Append a comment; returns its id."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFieldValue("comment", "a comment needs some text")
    if len(text) > MAX_COMMENT_LENGTH:
        raise InvalidFieldValue("comment", f"a comment is at most {MAX_COMMENT_LENGTH} characters")
    comment_id = uuid.uuid4().hex
    roots(doc).comments.append(
        Map({"id": comment_id, "author": author, "time": time, "text": text})
    )
    return comment_id


def read_comments(doc: Doc[Any]) -> list[Comment]:
    """Comments in the order they were appended (merged order on every replica)."""
    out = []
    for value in roots(doc).comments.to_py() or []:
        if isinstance(value, dict):
            time = value.get("time", 0.0)
            out.append(Comment(
                id=str(value.get("id", "")),
                author=str(value.get("author", "")),
                time=float(time) if isinstance(time, int | float) else 0.0,
                text=str(value.get("text", "")),
            ))
    return out
