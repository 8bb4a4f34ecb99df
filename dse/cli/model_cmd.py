"""`dse model FILE... --out DIR`: evaluate one mapping and write levels.csv + summary.json."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors
from dse.cli.options import generation_option, link_mode, link_transfer_options


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for levels.csv and summary.json (default: print only).")
@link_transfer_options
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override an architecture parameter, e.g. --set columns=3 (repeatable).")
@generation_option
@click.option("--jinja-data", "jinja_items", multiple=True, metavar="NAME=VALUE",
              help="Data for Jinja2 templates among FILES (Timeloop's jinja_parse_data).")
@click.option("--place", "placements", multiple=True, metavar="TENSOR=LEVEL",
              help="Back TENSOR at LEVEL instead of the outermost level: no level above holds "
                   "it, nothing is filled into it from above (repeatable; docs/model.md).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the table.")
@reports_spec_errors
def model(files: tuple[str, ...], out_dir: str | None, link_transfers: str | None,
          no_link_transfers: bool, settings: tuple[str, ...], generation: str,
          jinja_items: tuple[str, ...], placements: tuple[str, ...], quiet: bool) -> None:
    """Evaluate ONE mapping. FILES are YAML files merged at their top level (later wins):
    architecture, problem (workload), mapping and optionally an Accelergy ERT (energies) and
    ART (areas)."""
    from dse.arch.rules import check_layer
    from dse.model import evaluate
    from dse.pipeline.writers import level_rows, summary, terminal_table, write_outputs
    from dse.spec.arch_library import parse_settings
    from dse.spec.build import load_spec, read_mapping
    from dse.spec.jinja import parse_data

    spec = load_spec(files, need_mapping=False,
                     parameters=parse_settings(settings) if settings else None,
                     jinja_data=parse_data(jinja_items), allow_sparse=True)
    check_layer(spec.problem, spec.arch)  # the hardware's rules come before the mapping
    spec.mapping = read_mapping(spec.document, spec.arch, spec.problem, spec.arch_constraints)
    for note in spec.document.notes:
        click.echo(note, err=True)
    from dse.model.links import resolve_link_mode

    mode = resolve_link_mode(spec.arch, link_mode(link_transfers, no_link_transfers))
    if spec.sparse is not None and generation != "2024":
        from dse.errors import SpecError

        raise SpecError("sparse designs are modelled as the 2024 Timeloop (Sparseloop) build "
                        "only", key_path="--timeloop-generation", found=generation,
                        hint="drop --timeloop-generation legacy")
    placement = _parse_placements(placements)
    # a sparse design's tiles are checked once compressed (dse.model.sparse)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, link_transfers=mode,
                  generation=generation, check_capacity=spec.sparse is None,
                  placement=placement)
    extra: dict = {"link_transfers": mode}
    if placement:
        extra["placement"] = placement
    if spec.sparse is not None:
        from dse.model.sparse import check_sparse_capacity, sparse_evaluate
        from dse.pipeline.writers import (
            LEVEL_COLUMNS,
            SPARSE_COLUMNS,
            sparse_level_rows,
            sparse_summary,
        )

        shown = sparse_evaluate(spec.problem, spec.arch, spec.mapping, ev, spec.sparse,
                                link_transfers=mode, generation=generation,
                                placement=placement)
        check_sparse_capacity(spec.problem, spec.arch, spec.mapping, shown)
        for note in shown.notes:
            click.echo(note, err=True)
        rows = sparse_level_rows(shown, spec.arch)
        summ = sparse_summary(shown, spec.arch, spec.problem, spec.document.hashes, extra)
        columns = LEVEL_COLUMNS + SPARSE_COLUMNS
    else:
        shown, rows, columns = ev, level_rows(ev, spec.arch), None
        summ = summary(ev, spec.arch, spec.problem, spec.document.hashes, extra)
    if out_dir:
        write_outputs(Path(out_dir), rows, summ, columns)
    if not quiet:
        click.echo(terminal_table(shown, rows))
        if out_dir:
            click.echo(f"wrote {out_dir}/levels.csv and {out_dir}/summary.json")


def _parse_placements(items: tuple[str, ...]) -> dict[str, str]:
    """`TENSOR=LEVEL` options -> {tensor: level}; a malformed or repeated one is an error."""
    from dse.errors import SpecError

    out: dict[str, str] = {}
    for item in items:
        tensor, sep, level = item.partition("=")
        if not sep or not tensor.strip() or not level.strip():
            raise SpecError("--place takes TENSOR=LEVEL", found=item,
                            hint="e.g. --place Outputs=shared_glb")
        tensor, level = tensor.strip(), level.strip()
        if tensor in out:
            raise SpecError(f"--place gives {tensor} twice", found=item)
        out[tensor] = level
    return out
