"""`dse sweep FILE.yaml`: a grid over architectures x workloads x parameter overrides."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: results/sweep/<sweep name>).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Local processes.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="dask needs the optional extra: pip install 'dse[dask]'.")
@click.option("--scheduler", default=None, help="dask scheduler address, e.g. tcp://HOST:8786.")
@click.option("--shard", default=None, help="Run only design points i, i+N, ... (i/N).")
@click.option("--store", "store_path", default="results/store.sqlite", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def sweep(sweep_file, out_dir, jobs, executor, scheduler, shard, store_path, quiet):
    """Run every design point of SWEEP_FILE; each point's layers.csv/totals.csv go to
    OUT/<point>/, all totals to OUT/sweep.csv. Finished layers are stored as they complete and
    are never recomputed, so an interrupted sweep resumes with the same command."""
    from tqdm import tqdm

    from dse.pipeline.store import ResultStore
    from dse.pipeline.sweep import parse_shard, pinned_warning, read_sweep, run_sweep

    spec = read_sweep(sweep_file)
    out = Path(out_dir or f"results/sweep/{spec.name}")
    store = ResultStore(store_path)
    bar = tqdm(unit="layer", desc=spec.name, disable=quiet)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    result = run_sweep(spec, out, store, jobs=jobs, executor=executor, scheduler=scheduler,
                       shard=parse_shard(shard), progress=progress)
    bar.close()
    store.close()
    for pid, levels in result.pinned.items():
        click.echo(pinned_warning(pid, levels), err=True)
    for pid, why in result.refused.items():
        click.echo(f"refused {pid}: {why}", err=True)
    if not quiet:
        click.echo(f"{result.points} design points, {result.computed} layer mappings computed, "
                   f"{result.reused} reused from the store; wrote {out}/sweep.csv")
