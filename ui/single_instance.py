"""One running app per profile: a second launch brings the first window forward.

:class:`SingleInstance` listens on a local socket (``QLocalServer``) named after the
profile folder (a hash of its resolved path, so two profiles never collide and the name
is short enough for every OS). :meth:`SingleInstance.acquire` either starts listening
(first launch: True) or, when another process already listens, sends it "activate" and
returns False; the running one emits :attr:`SingleInstance.activated` and the app raises
its window. A stale socket left by a crashed process is removed and taken over.

The connect in :meth:`acquire` waits at most :data:`CONNECT_MS` and runs before the app's
event loop starts, so the UI never waits on it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["CONNECT_MS", "SingleInstance", "server_name"]

log = logging.getLogger(__name__)

CONNECT_MS = 500
_MESSAGE = b"activate\n"


def server_name(profile: Path) -> str:
    """The local socket name of a profile folder."""
    digest = hashlib.sha256(str(Path(profile).resolve()).encode("utf-8")).hexdigest()
    return f"liveedit-{digest[:24]}"


class SingleInstance(QObject):
    """The guard for one profile folder."""

    #: Another launch on this profile asked to be shown instead.
    activated = Signal()

    def __init__(self, profile: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(profile)
        self._server: QLocalServer | None = None

    def acquire(self) -> bool:
        """True when this process now owns the profile; False when another one does (it
        has been asked to come forward)."""
        if self._wake_running():
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A socket file left by a process that died: nobody answered, so take it over.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning("single-instance guard unavailable: %s", server.errorString())
                return True
        server.newConnection.connect(self._on_connection)
        self._server = server
        return True

    def release(self) -> None:
        """Stop listening (at quit; a new launch then owns the profile)."""
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None

    def _wake_running(self) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_MS):
            return False
        socket.write(_MESSAGE)
        socket.waitForBytesWritten(CONNECT_MS)
        socket.disconnectFromServer()
        log.info("another Live Edit runs on this profile; asked it to come forward")
        return True

    def _on_connection(self) -> None:
        server = self._server
        if server is None:
            return
        while server.hasPendingConnections():
            socket = server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(_MESSAGE.strip()):
            self.activated.emit()
