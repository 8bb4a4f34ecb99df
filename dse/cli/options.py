"""Options shared by several commands."""

from __future__ import annotations

import click

LINK_HELP = ("Neighbour-to-neighbour link transfers: timeloop (anywhere, as Timeloop; the "
             "default for Timeloop architectures), declared (only between instances of a "
             "level with `neighbour_links: true` that keeps the tensor; the default for native "
             "architectures), off.")


def link_transfer_options(f):
    """`--link-transfers MODE` and its alias `--no-link-transfers` (= off)."""
    f = click.option("--no-link-transfers", is_flag=True,
                     help="Same as --link-transfers off.")(f)
    return click.option("--link-transfers", "link_transfers", default=None,
                        type=click.Choice(["timeloop", "declared", "off"]), help=LINK_HELP)(f)


def link_mode(link_transfers: str | None, no_link_transfers: bool) -> str | None:
    """The mode asked for on the command line (None: the architecture's default)."""
    if no_link_transfers:
        if link_transfers not in (None, "off"):
            raise click.UsageError(f"--no-link-transfers contradicts --link-transfers "
                                   f"{link_transfers}")
        return "off"
    return link_transfers


def generation_option(f):
    """`--timeloop-generation 2024|legacy` (dse/model/generation.py, docs/timeloop.md)."""
    return click.option(
        "--timeloop-generation", "generation", type=click.Choice(["2024", "legacy"]),
        default="2024", show_default=True,
        help="Timeloop build to reproduce: 2024 (current) or legacy (v0.3 era: one energy per "
             "level, output fills not elided, no leakage). See docs/timeloop.md.")(f)
