"""Results stored as they are produced, keyed by a content hash, in an embedded SQLite file.

A key covers everything that determines a result (architecture, constraints, layer, mapper
settings, tool version), so a second run — or a resumed, killed one — reuses finished work and
never writes a row twice. Each put is its own committed transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def content_key(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: dict) -> None:
        with self._db:  # one committed transaction per result
            self._db.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                             (key, json.dumps(value, sort_keys=True)))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()
