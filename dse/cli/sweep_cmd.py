"""`dse sweep FILE.yaml`: a grid over architectures x workloads x parameter overrides."""

from __future__ import annotations

from pathlib import Path

import click

from dse import install_hint
from dse.cli.errors import INTERRUPTED, JOBS, listing, reports_spec_errors
from dse.cli.options import link_mode, link_transfer_options


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: results/sweep/<sweep name>).")
@click.option("--jobs", type=JOBS, default=1, show_default=True, help="Local processes.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help=f"dask needs the optional extra: {install_hint('dask')}.")
@click.option("--scheduler", default=None, help="dask scheduler address, e.g. tcp://HOST:8786.")
@click.option("--shard", default=None, help="Run only design points i, i+N, ... (i/N).")
@click.option("--store", "store_path", default="results/store.sqlite", show_default=True)
@click.option("--timeloop-generation", "generation", type=click.Choice(["2024", "legacy"]),
              default=None,
              help="Timeloop build to reproduce: 2024 or legacy (v0.3 era). Default: the sweep "
                   "file's mapper.timeloop_generation, else 2024.")
@link_transfer_options
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def sweep(sweep_file, out_dir, jobs, executor, scheduler, shard, store_path, generation,
          link_transfers, no_link_transfers, quiet):
    """Run every design point of SWEEP_FILE; each point's layers.csv/totals.csv go to
    OUT/<point>/, all totals to OUT/sweep.csv. Finished layers are stored as they complete and
    are never recomputed, so an interrupted sweep resumes with the same command."""
    from tqdm import tqdm

    from dse.pipeline.store import ResultStore
    from dse.pipeline.sweep import parse_shard, pinned_warning, read_sweep, run_sweep
    from dse.pipeline.work import Interrupted

    spec = read_sweep(sweep_file)
    if generation is not None:
        from dataclasses import replace

        spec = replace(spec, config=replace(spec.config, generation=generation))
    mode = link_mode(link_transfers, no_link_transfers)
    if mode is not None:  # the command line overrides the file's `mapper: link_transfers`
        spec.config.link_transfers = mode
    out = Path(out_dir or f"results/sweep/{spec.name}")
    store = ResultStore(store_path)
    bar = tqdm(unit="layer", desc=spec.name, disable=quiet)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = run_sweep(spec, out, store, jobs=jobs, executor=executor,
                           scheduler=scheduler, shard=parse_shard(shard), progress=progress)
    except Interrupted as exc:
        bar.close()
        store.close()
        click.echo(f"interrupted: {len(exc.missing)} design point(s) not finished "
                   f"({listing(exc.missing)}); sweep.csv not written. Finished points are "
                   f"in {out}/ and the {len(exc.done)} layer mapping(s) done are kept in "
                   f"{store_path}; run the same command again to finish.", err=True)
        raise SystemExit(INTERRUPTED) from None
    bar.close()
    store.close()
    for pid, levels in result.pinned.items():
        click.echo(pinned_warning(pid, levels), err=True)
    for pid, why in result.refused.items():
        click.echo(f"refused {pid}: {why}", err=True)
    if not quiet:
        click.echo(f"{result.points} design points, {result.computed} layer mappings computed, "
                   f"{result.reused} reused from the store; wrote {out}/sweep.csv")
