"""Interop tests: the real y-websocket and yjs npm packages under Node against /yjs."""
