"""`dse arch list|show`: the architecture library (arch_specs/) or any architecture file."""

from __future__ import annotations

import click

from dse.cli.errors import reports_spec_errors


@click.group()
def arch() -> None:
    """Architectures of the library (arch_specs/) or any architecture file."""


@arch.command("list")
@reports_spec_errors
def list_() -> None:
    """List the library: name, peak MACs/cycle, clock, technology, energy source, file."""
    from dse.report.arch import list_text, streaming_list_text
    from dse.spec.arch_library import architecture_files, streaming_files

    click.echo(list_text(architecture_files()))
    if streaming_files():
        click.echo("\nstreaming dataflow designs (one engine per layer, docs/streaming.md):")
        click.echo(streaming_list_text(streaming_files()))


@arch.command()
@click.argument("ref", metavar="NAME|FILE")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override a parameter of the architecture (e.g. --set columns=3).")
@click.option("--energy-model", default=None, metavar="MODEL",
              help="Estimate missing energies with this model instead of the file's "
                   "(table-45nm or eyeriss-normalized).")
@reports_spec_errors
def show(ref: str, settings: tuple[str, ...], energy_model: str | None) -> None:
    """Print the hierarchy, sizes, fan-outs, peak MACs/cycle, clock and each energy's source."""
    from pathlib import Path

    from dse.report.arch import arch_text, streaming_arch_text
    from dse.spec.arch_library import load_architecture, parse_settings, resolve
    from dse.spec.streaming_arch import file_is_streaming, load_streaming

    if file_is_streaming(Path(resolve(ref))):
        if settings or energy_model:
            raise click.UsageError("--set and --energy-model apply to loop-nest architectures")
        click.echo(streaming_arch_text(load_streaming(resolve(ref))))
        return
    loaded = load_architecture(ref, parameters=parse_settings(settings) or None,
                               energy_model=energy_model)
    click.echo(arch_text(loaded))
