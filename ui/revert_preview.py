"""The confirmation shown before "Revert whole customer": what the revert will change.

Lists, section by section, the fields that get their old values, the notes changes (a
word diff), the tasks that come back, go or change, whether the customer is deleted or
restored, and that comments stay as they are (:class:`ui.version_diff.RevertPlan`).
"Revert" accepts; "Cancel" changes nothing. Open it with ``open()`` (window-modal, never a
nested event loop) and connect ``accepted``.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ui.version_diff import RevertPlan

__all__ = ["RevertPreviewDialog"]


class RevertPreviewDialog(QDialog):
    """"Revert to the version of <when>?" with the plan's lines and Revert / Cancel."""

    def __init__(self, plan: RevertPlan, when: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.setWindowTitle("Revert whole customer?")
        self.setAccessibleName("Revert whole customer?")
        self.resize(520, 360)
        heading = QLabel(
            f"Reverting brings the customer back to the version of {when}. This changes:"
            if when else "Reverting brings the customer back to that version. This changes:")
        heading.setWordWrap(True)
        self.changes = QPlainTextEdit()
        self.changes.setReadOnly(True)
        self.changes.setAccessibleName("What the revert changes")
        self.changes.setPlainText("\n".join(plan.lines()))
        note = QLabel("The revert is a new change by you: it syncs to everyone, and the "
                      "history keeps today's version, so it can be undone.")
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.revert_button = self.buttons.addButton(
            "Revert", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.changes, 1)
        layout.addWidget(note)
        layout.addWidget(self.buttons)

    def text(self) -> str:
        """What the dialog lists (for tests and screen readers)."""
        return self.changes.toPlainText()
