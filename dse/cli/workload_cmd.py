"""`dse workload list|show|stats|export`: the workload library and network files."""

from __future__ import annotations

import click

from dse.cli.errors import reports_spec_errors


@click.group()
def workload() -> None:
    """Networks and single layers of the workload library (workloads/) or any workload file."""


@workload.command("list")
@reports_spec_errors
def list_() -> None:
    """List the library: name, kind and where the file is."""
    from dse.spec.workload_library import list_workloads

    entries = list_workloads()
    width = max((len(e.name) for e in entries), default=4)
    for e in entries:
        click.echo(f"{e.name:<{width}}  {e.kind:<8}  {e.path}")


@workload.command()
@click.argument("ref", metavar="NAME|FILE")
@reports_spec_errors
def show(ref: str) -> None:
    """Print the per-layer table of a network (shapes, MACs, parameters, inputs)."""
    from dse.report.workload import layer_table
    from dse.spec.workload_library import load_workload

    net = load_workload(ref)
    click.echo(layer_table(net))


@workload.command()
@click.argument("ref", metavar="NAME|FILE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@reports_spec_errors
def stats(ref: str, as_json: bool) -> None:
    """Print network totals: MACs, parameters (what is counted is stated), activations."""
    import json

    from dse.report.workload import stats_text
    from dse.spec.workload_library import load_workload

    net = load_workload(ref)
    if as_json:
        click.echo(json.dumps(net.stats(), indent=2))
    else:
        click.echo(stats_text(net))


@workload.command()
@click.argument("ref", metavar="NAME|FILE")
@click.option("--timeloop", is_flag=True, help="Write Timeloop problem YAML (one file a layer).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for the files.")
@click.option("--unique", is_flag=True,
              help="One file per unique layer shape instead of one per layer.")
@reports_spec_errors
def export(ref: str, timeloop: bool, out_dir: str, unique: bool) -> None:
    """Export each layer of a network as a problem file for Timeloop."""
    from dse.errors import SpecError
    from dse.report.workload import export_timeloop
    from dse.spec.workload_library import load_workload

    if not timeloop:
        raise SpecError("choose an export format", hint="add --timeloop")
    net = load_workload(ref)
    written = export_timeloop(net, out_dir, unique=unique)
    click.echo(f"wrote {len(written)} Timeloop problem files to {out_dir} "
               f"({'one per unique shape' if unique else 'one per layer'}; pass-through and "
               "concat layers have no problem)")
