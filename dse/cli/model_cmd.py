"""`dse model FILE... --out DIR`: evaluate one mapping and write levels.csv + summary.json."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for levels.csv and summary.json (default: print only).")
@click.option("--no-link-transfers", is_flag=True,
              help="Do not model neighbour-to-neighbour transfers (Timeloop models them).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override an architecture parameter, e.g. --set columns=3 (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the table.")
@reports_spec_errors
def model(files: tuple[str, ...], out_dir: str | None, no_link_transfers: bool,
          settings: tuple[str, ...], quiet: bool) -> None:
    """Evaluate ONE mapping. FILES are YAML files merged at their top level (later wins):
    architecture, problem (workload), mapping and optionally an Accelergy ERT (energies) and
    ART (areas)."""
    from dse.arch_library import parse_settings
    from dse.arch_rules import check_layer
    from dse.model import evaluate
    from dse.report_model import level_rows, summary, terminal_table, write_outputs
    from dse.spec.build import load_spec, read_mapping

    spec = load_spec(files, need_mapping=False,
                     parameters=parse_settings(settings) if settings else None)
    check_layer(spec.problem, spec.arch)  # the hardware's rules come before the mapping
    spec.mapping = read_mapping(spec.document, spec.arch, spec.problem, spec.arch_constraints)
    for note in spec.document.notes:
        click.echo(note, err=True)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, link_transfers=not no_link_transfers)
    rows = level_rows(ev, spec.arch)
    if out_dir:
        write_outputs(Path(out_dir), rows, summary(ev, spec.arch, spec.problem,
                                                   spec.document.hashes))
    if not quiet:
        click.echo(terminal_table(ev, rows))
        if out_dir:
            click.echo(f"wrote {out_dir}/levels.csv and {out_dir}/summary.json")
