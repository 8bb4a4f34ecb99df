"""`dse convert FILE... --out DIR`: write the sections found as dse native YAML files."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for architecture.yaml, problem.yaml and mapping.yaml.")
@click.option("--to", "target", type=click.Choice(["native", "timeloop"]), default="native",
              show_default=True,
              help="native: dse's format. timeloop: a v0.4 architecture.yaml (fan-out levels as "
                   "spatial containers), ERT.yaml, problem.yaml and map.yaml whose targets are "
                   "the level names Timeloop gives that architecture.")
@click.option("--jinja-data", "jinja_items", multiple=True, metavar="NAME=VALUE",
              help="Data for Jinja2 templates among FILES.")
@reports_spec_errors
def convert(files: tuple[str, ...], out_dir: str, target: str,
            jinja_items: tuple[str, ...]) -> None:
    """Convert Timeloop (v0.3/v0.4) or native YAML to dse's native format (or, with --to
    timeloop, to Timeloop's). FILES merge as in `dse model`; each section present
    (architecture, problem, mapping) becomes one file, and an ERT's energies are written inline
    with their source (--to timeloop: into ERT.yaml)."""
    from dse.spec.jinja import parse_data
    from dse.spec.yamlload import load_documents

    doc = load_documents(list(files), jinja_data=parse_data(jinja_items))
    out = Path(out_dir)
    if target == "timeloop":
        written = _to_timeloop(doc, out)
    else:
        for note in doc.notes:
            click.echo(note, err=True)
        written = _to_native(doc, out)
    if not written:
        click.echo("nothing to convert: no architecture, problem or mapping section", err=True)
        raise SystemExit(2)
    click.echo(f"wrote {', '.join(str(out / w) for w in written)}")


def _to_native(doc, out: Path) -> list[str]:
    """dse's native files for the merged document (energies inline with their source)."""
    import yaml

    from dse.pipeline.writers import atomic_write
    from dse.spec import build
    from dse.spec import convert as conv

    build.check_top_level(doc)
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
    return written


def _to_timeloop(doc, out: Path) -> list[str]:
    """Timeloop's files for the merged document; the map's targets follow the arch's names."""
    import yaml

    from dse.pipeline.writers import atomic_write
    from dse.spec import build
    from dse.spec import convert as conv
    from dse.workload.layers import to_timeloop

    build.check_top_level(doc)
    header = "# Converted by `dse convert --to timeloop` from: " + ", ".join(doc.files) + "\n"
    written = []
    arch = problem = None
    cons: dict = {}
    if "problem" in doc.data or "workload" in doc.data:
        problem = build.read_problem(doc)
        atomic_write(out / "problem.yaml", header + yaml.safe_dump(to_timeloop(problem),
                                                                   sort_keys=False))
        written.append("problem.yaml")
    if "architecture" in doc.data:
        arch, cons = build.read_arch(doc)
        text = conv.dump_timeloop({"architecture": conv.arch_to_timeloop(arch, cons)})
        atomic_write(out / "architecture.yaml", header + text)
        written.append("architecture.yaml")
        ert = conv.ert_of(arch)
        if ert is not None:
            atomic_write(out / "ERT.yaml", header + yaml.safe_dump({"ERT": ert}, sort_keys=False))
            written.append("ERT.yaml")
    if doc.data.get("mapping") and arch is not None and problem is not None:
        mapping = build.read_mapping(doc, arch, problem, cons)
        text = yaml.safe_dump({"mapping": conv.mapping_to_timeloop(mapping, arch, problem)},
                              sort_keys=False)
        atomic_write(out / "map.yaml", header + text)
        written.append("map.yaml")
    return written
