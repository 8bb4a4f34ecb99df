"""The CLI's one place for turning bad input into a message and exit code 2."""

from __future__ import annotations

import functools
import sys

import click

from dse.errors import SpecError


def reports_spec_errors(fn):
    """Print SpecError as one paragraph on stderr and exit 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper
