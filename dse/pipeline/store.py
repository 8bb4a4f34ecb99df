"""Results stored as they are produced, keyed by a content hash, in an embedded SQLite file.

A key covers everything that determines a result (architecture, constraints, layer, mapper
settings, tool version), so a second run — or a resumed, killed one — reuses finished work and
never writes a row twice. Each put is its own committed transaction.

Several processes may share one store (two sweeps started together, shards on one machine).
Before computing a result a process *claims* its key (the claims table: owner host, pid, a
heartbeat refreshed every few seconds); others wait for a claimed key instead of computing it
again, and take the claim over when its owner is gone (a dead pid on this host, or no heartbeat
for STALE_S seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from dse.errors import SpecError

HEARTBEAT_S = 5.0
STALE_S = 60.0
_HINT = "move or delete that file, or name another store with --store PATH"


def content_key(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class StoreError(SpecError):
    """The store file cannot be used (not a database, corrupt, rows this dse did not write)."""


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        if self.path.is_dir():
            raise StoreError("the result store is a folder, not a database file",
                             file=str(self.path), expected="an SQLite file (created if missing)",
                             hint="name a file with --store PATH")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._guard():
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                "host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL)")
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(results)")}
            if not {"key", "value"} <= cols:
                raise StoreError("the store's results table is not one this dse wrote",
                                 file=str(self.path), expected="columns key, value",
                                 found=sorted(cols), hint=_HINT)

    def _connect(self) -> sqlite3.Connection:
        # autocommit; transactions are explicit (BEGIN IMMEDIATE for claims)
        return sqlite3.connect(str(self.path), timeout=60, isolation_level=None,
                               check_same_thread=False)

    def _guard(self):
        return _Guard(self.path)

    # ------------------------------------------------------------------ results
    def get(self, key: str) -> dict | None:
        """The stored value, or None. A value that is not a JSON object is a StoreError."""
        with self._guard():
            row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise self.bad_row(key, "a JSON object", str(row[0])[:60])
        return value

    def bad_row(self, key: str, expected: str, found: object) -> StoreError:
        return StoreError(f"the stored result {key[:16]} is not what this dse writes",
                          file=str(self.path), expected=expected, found=found, hint=_HINT)

    def put(self, key: str, value: dict) -> None:
        """Store a finished result and drop its claim, in one committed transaction."""
        if value.get("interrupted"):
            raise ValueError("a cut-short search is never stored")
        text = json.dumps(value, sort_keys=True)
        with self._guard():
            self._begin()
            try:
                self._db.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                                 (key, text))
                self._db.execute("DELETE FROM claims WHERE key = ?", (key,))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def __len__(self) -> int:
        with self._guard():
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    # ------------------------------------------------------------------ claims
    def claim(self, key: str) -> bool:
        """Claim `key` for this process: True if it is ours now (free, ours already, or its
        owner is gone), False while another live process is computing it or once its result is
        stored (another process may have finished it since the caller looked: the caller finds
        it on its next look instead of computing it again)."""
        now = time.time()
        with self._guard():
            self._begin()
            try:
                if self._db.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone():
                    self._db.execute("COMMIT")
                    return False
                row = self._db.execute("SELECT owner, host, pid, heartbeat FROM claims "
                                       "WHERE key = ?", (key,)).fetchone()
                if row is not None and row[0] != self.owner and _alive(*row[1:], now, self.host):
                    self._db.execute("COMMIT")
                    return False
                self._db.execute("INSERT OR REPLACE INTO claims (key, owner, host, pid, "
                                 "heartbeat) VALUES (?, ?, ?, ?, ?)",
                                 (key, self.owner, self.host, os.getpid(), now))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._start_heartbeat()
        return True

    def release(self) -> None:
        """Drop every claim this process holds (its unfinished work is free for others)."""
        with self._guard():
            self._rollback()
            self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

    def _start_heartbeat(self) -> None:
        if self._beat is None:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="dse-store-heartbeat")
            self._beat.start()

    def _heartbeat(self) -> None:
        db = self._connect()
        try:
            while not self._stop.wait(HEARTBEAT_S):
                db.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                           (time.time(), self.owner))
        except sqlite3.Error:
            pass  # the main thread reports store problems; a missed beat only delays others
        finally:
            db.close()

    def _begin(self) -> None:
        self._rollback()
        self._db.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=2)
        try:
            self.release()
        finally:
            self._db.close()


def _alive(host: str, pid: int, heartbeat: float, now: float, this_host: str) -> bool:
    """Is a claim's owner still working? Same host: its process exists (and it beat
    recently); another host: it beat within STALE_S seconds."""
    if now - heartbeat > STALE_S:
        return False
    return host != this_host or process_exists(pid)


def process_exists(pid: int) -> bool:
    """True if a process with this id exists on this machine (signal 0 probes without
    sending anything; a process of another user answers with PermissionError)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Guard:
    """Turn sqlite errors into one readable StoreError naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return False
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            hint = "another process holds the store for too long; try again"
        elif "full" in text:
            hint = "free some space, or name a store elsewhere with --store PATH"
        elif "readonly" in text or "read-only" in text:
            hint = "name a store you can write with --store PATH"
        else:
            hint = _HINT
        raise StoreError(f"cannot use the result store: {text}", file=str(self.path),
                         expected="an SQLite database written by dse", hint=hint) from None
