"""`dse archon`: the ARCHON study (predictive layer fusion vs dense and sparse baselines)."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import COUNT, JOBS, SEED, reports_spec_errors


@click.command()
@click.option("--design", "design_file", default=None, type=click.Path(dir_okay=False),
              help="Study file (default: the bundled arch_specs/archon/archon.yaml).")
@click.option("--study", "studies", multiple=True, metavar="NET[/DATASET]",
              help="Run only these network pairs (repeatable; default all).")
@click.option("--out", "out_dir", default="results/archon", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--artifact-compat", is_flag=True,
              help="Reproduce the reference artifact's non-physical choices (docs/archon.md).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override an ARCHON design parameter for every study, e.g. "
                   "--set adders_per_pe=4 (repeatable).")
@click.option("--sparse-density", default=None, metavar="PW[,DW]",
              help="Prune the sparse baseline to these weight densities (pointwise, depthwise) "
                   "with seeded synthetic tiles instead of the measured per-PE tables.")
@click.option("--max-evals", type=COUNT, default=100_000, show_default=True,
              help="Mappings evaluated per unique layer or phase.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Mapper seed; also seeds synthetic nonzero tiles.")
@click.option("--jobs", type=JOBS, default=1, show_default=True)
@click.option("--store", "store_path", default="results/store.sqlite", show_default=True,
              help="Result store: finished layers are reused, never recomputed.")
@click.option("--no-plots", is_flag=True, help="Skip the plots.")
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def archon(design_file, studies, out_dir, artifact_compat, settings, sparse_density, max_evals,
           seed, jobs, store_path, no_plots, quiet):
    """Dense, sparse and ARCHON cycles and energy per block for each network pair; writes
    OUT/<net>_<dataset>/blocks.csv, OUT/speedups.csv and plots, and prints the tables."""
    import dataclasses

    from dse.mapper.search import SearchConfig
    from dse.pipeline.archon import run_archon, select
    from dse.pipeline.store import ResultStore
    from dse.report.archon import block_table, plots, speedup_table
    from dse.spec.arch_library import parse_settings
    from dse.spec.archon import override_design, read_archon_study
    from dse.spec.library_paths import bundled_dir

    path = design_file or str(bundled_dir("arch_specs") / "archon" / "archon.yaml")
    study = read_archon_study(path)
    if sparse_density is not None:
        study = dataclasses.replace(study, sparse_source="synthetic",
                                    sparse_density=_densities(sparse_density))
    chosen = select(study, list(studies))
    overrides = parse_settings(settings)
    if overrides:
        chosen = [dataclasses.replace(s, design=override_design(s.design, overrides))
                  for s in chosen]
    out = Path(out_dir)
    store = ResultStore(store_path)
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    try:
        rows, speedups = run_archon(study, chosen, out, store, SearchConfig(max_evals=max_evals,
                                    seed=seed), jobs, artifact_compat, seed, log)
    finally:
        store.close()
    mode = "artifact_compat" if artifact_compat else "physical model"
    for s in chosen:
        rs = [r for r in rows if (r["network"], r["dataset"]) == (s.network, s.dataset)]
        click.echo(f"\n{s.network} / {s.dataset} ({mode}): cycles and energy per block")
        click.echo(block_table(rs))
    click.echo(f"\nwhole network ({mode}); paper = ICS'21 abstract, artifact = its result.csv")
    click.echo(speedup_table(speedups, {(s.network, s.dataset): s.reference for s in chosen}))
    if not no_plots:
        written = plots(out, rows, speedups)
        if written:
            click.echo(f"plots: {', '.join(str(out / w) + '.png' for w in written)}")
    click.echo(f"wrote {out / 'speedups.csv'}")


def _densities(text: str) -> dict[str, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(0 < v <= 1 for v in values):
        raise click.BadParameter(f"expected PW[,DW] densities in (0, 1], got {text!r}",
                                 param_hint="--sparse-density")
    return {"pointwise": values[0], "depthwise": values[-1]}
