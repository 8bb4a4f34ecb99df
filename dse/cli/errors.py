"""The CLI's one place for turning errors into a message and an exit code.

Exit codes: 0 success, 1 the run worked but found nothing (e.g. no valid mapping), 2 bad input
(SpecError, or a click usage error), 3 an internal error: a bug in dse, printed as one paragraph
with a request to report it (set DSE_DEBUG=1 to see the traceback instead).
"""

from __future__ import annotations

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


def reports_spec_errors(fn):
    """Print SpecError as one paragraph on stderr and exit 2; anything unexpected becomes an
    'internal error' paragraph and exit 3 — never a traceback (unless DSE_DEBUG is set)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
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
