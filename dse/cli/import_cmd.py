"""`dse import MODEL.onnx -o workloads/NAME.yaml` (or Timeloop/native problem files)."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Network YAML to write (e.g. workloads/NAME.yaml).")
@click.option("--name", default=None, help="Network name (default: the file name).")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Leave out ONNX nodes whose name or output matches this glob (e.g. "
                   "'*AuxLogits*'), and everything that depends on them. Repeatable.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@reports_spec_errors
def import_(sources: tuple[str, ...], out: str, name: str | None, exclude: tuple[str, ...],
            force: bool) -> None:
    """Make a network YAML from an ONNX model (needs the `onnx` extra) or from one or
    more single-layer problem files (Timeloop or native; one layer each)."""
    from dse.errors import SpecError

    out_path = Path(out)
    if out_path.exists() and not force:
        raise SpecError("the output file exists", file=out, hint="pass --force to overwrite it")
    onnx_files = [s for s in sources if s.lower().endswith(".onnx")]
    if onnx_files:
        if len(sources) != 1:
            raise SpecError("give one ONNX model at a time", found=list(sources))
        from dse.spec.onnx_import import import_onnx

        text, net, report = import_onnx(sources[0], name=name, exclude=exclude)
        click.echo(report.text(), err=True)
    else:
        if exclude:
            raise SpecError("--exclude applies to ONNX models only")
        from dse.spec.network import load_network_text
        from dse.spec.workload_library import load_problem_file, network_text_from_problems

        problems = [load_problem_file(s) for s in sources]
        names = [Path(s).stem for s in sources]
        net_name = name or (names[0] if len(names) == 1 else out_path.stem)
        text = network_text_from_problems(problems, net_name, ", ".join(sources), names)
        net = load_network_text(text, out)
    from dse.pipeline.writers import atomic_write

    atomic_write(out_path, text)
    s = net.stats()
    click.echo(f"wrote {out}: {s['layers']} layers, {s['macs']:,} MACs, {s['params']:,} params")
