"""The CLI's one place for turning errors into a message and an exit code.

Exit codes: 0 success, 1 the run worked but found nothing (e.g. no valid mapping), 2 bad input
(SpecError, or a click usage error), an unusable store or a file-system error, 3 an internal
error: a bug in dse, printed as one paragraph with a request to report it (set DSE_DEBUG=1 to
see the traceback instead), 130 Ctrl-C.
"""

from __future__ import annotations

import errno
import functools
import os
import sys

import click

from dse.errors import SpecError

INT64_MAX = 2**63 - 1
MAX_JOBS = 256
# Option types for budgets and seeds: bad values are usage errors (exit 2) before any work.
COUNT = click.IntRange(1, INT64_MAX)
SEED = click.IntRange(0, INT64_MAX)
JOBS = click.IntRange(1, MAX_JOBS)


INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

_OS_REASONS = {
    errno.ENOSPC: ("the disk is full (no space left on the device)",
                   "free some space or write somewhere else"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or write somewhere else"),
    errno.EROFS: ("the file system is read-only", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder you can write to (or fix its mode)"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to"),
    errno.ENOTDIR: ("a part of this path is a regular file, not a folder",
                    "choose a path whose parents are folders"),
    errno.EEXIST: ("a file is in the way where a folder is needed",
                   "choose a path whose parents are folders"),
    errno.EISDIR: ("this is a folder, not a file", "name a file"),
    errno.ENAMETOOLONG: ("a name in this path is too long for the file system",
                         "use a shorter name"),
    errno.ELOOP: ("the path is a symlink loop (too many levels of symbolic links)",
                  "fix or remove the link"),
    errno.ENOENT: ("no such file or folder", None),
    errno.ECHILD: ("a worker process died (killed, or out of memory?)",
                   "run the same command again: finished layers are kept; use fewer --jobs "
                   "if memory is short"),
}


def listing(names: list[str], most: int = 12) -> str:
    """Names for a message: all of a few, or the first `most` and how many more."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f" and {len(names) - most} more"


def os_error(exc: OSError) -> SpecError:
    """An OSError as one paragraph: the path, what went wrong, what to do."""
    reason, hint = _OS_REASONS.get(exc.errno, (exc.strerror or str(exc), None))
    path = exc.filename
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if path is not None:
        path = str(path)
        if len(path) > 160:
            path = f"{path[:80]}...{path[-40:]} ({len(path)} characters)"
    found = f"{exc.strerror} (errno {errno.errorcode.get(exc.errno, exc.errno)})" \
        if exc.strerror else None
    return SpecError(reason, file=path, found=found, hint=hint)


def reports_spec_errors(fn):
    """Print SpecError (and file-system errors) as one paragraph on stderr and exit 2; Ctrl-C
    exits 130; anything unexpected becomes an 'internal error' paragraph and exit 3 — never a
    traceback (unless DSE_DEBUG is set)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"error: {os_error(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
            if os.environ.get("DSE_DEBUG"):
                raise
            click.echo(f"internal error: {internal_error_text(exc)}", err=True)
            sys.exit(3)

    return wrapper


def internal_error_text(exc: BaseException) -> str:
    """One paragraph for an unexpected exception: its type, a short message, what to do."""
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - str() of a broken exception must not fail here
        detail = ""
    detail = " ".join(detail.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    name = type(exc).__name__
    return (f"{name}{': ' + detail if detail else ''}. This is a bug in dse, not in your input "
            "as far as dse can tell; please report it with the command and input files "
            "(DSE_DEBUG=1 shows the traceback).")
