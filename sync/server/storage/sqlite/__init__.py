"""The SQLite engine: the embedded default (one node)."""
