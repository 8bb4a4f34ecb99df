"""`dse convert FILE... --out DIR`: write the sections found as dse native YAML files."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for architecture.yaml, problem.yaml and mapping.yaml.")
@reports_spec_errors
def convert(files: tuple[str, ...], out_dir: str) -> None:
    """Convert Timeloop (v0.3/v0.4) or native YAML to dse's native format. FILES merge as in
    `dse model`; each section present (architecture, problem, mapping) becomes one file, and
    an ERT's energies are written inline with their source."""
    import yaml

    from dse.report_model import atomic_write
    from dse.spec import build
    from dse.spec import convert as conv
    from dse.spec.yamlload import load_documents

    doc = load_documents(list(files))
    for note in doc.notes:
        click.echo(note, err=True)
    build.check_top_level(doc)
    out = Path(out_dir)
    written = []
    header = "# Converted by `dse convert` from: " + ", ".join(doc.files) + "\n"
    problem = arch = None
    cons: dict = {}
    if "problem" in doc.data or "workload" in doc.data:
        problem = build.read_problem(doc)
        text = yaml.safe_dump({"problem": conv.problem_to_native(problem)}, sort_keys=False)
        atomic_write(out / "problem.yaml", header + text)
        written.append("problem.yaml")
    if "architecture" in doc.data:
        arch, cons = build.read_arch(doc)
        sections = {"architecture": conv.arch_to_native(arch, cons)}
        node_cons = conv.arch_constraints_to_native(arch, doc.data)
        if node_cons is not None:  # mapspace constraints travel with the architecture
            sections["constraints"] = node_cons
        text = yaml.safe_dump(sections, sort_keys=False)
        atomic_write(out / "architecture.yaml", header + text)
        written.append("architecture.yaml")
    if doc.data.get("mapping") and arch is not None and problem is not None:
        mapping = build.read_mapping(doc, arch, problem, cons)
        text = yaml.safe_dump({"mapping": conv.mapping_to_native(mapping, arch, problem)},
                              sort_keys=False)
        atomic_write(out / "mapping.yaml", header + text)
        written.append("mapping.yaml")
    if not written:
        click.echo("nothing to convert: no architecture, problem or mapping section", err=True)
        raise SystemExit(2)
    click.echo(f"wrote {', '.join(str(out / w) for w in written)}")
