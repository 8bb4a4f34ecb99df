"""`dse run --arch A --workload W --out DIR`: a whole network, every unique layer mapped once."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import COUNT, JOBS, SEED, reports_spec_errors


@click.command()
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False),
              help="Architecture YAML; NAME.constraints.yaml beside it is applied too.")
@click.option("--constraints", "cons_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra constraint / mapper files (repeatable).")
@click.option("--workload", required=True, help="Network NAME (workloads/) or YAML file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--objective", default="edp", show_default=True,
              type=click.Choice(["edp", "energy", "delay", "delay,energy", "energy,delay"]))
@click.option("--search", default="auto", show_default=True,
              type=click.Choice(["exhaustive", "random", "auto"]))
@click.option("--max-evals", type=COUNT, default=100_000, show_default=True,
              help="Mappings evaluated per unique layer.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--jobs", type=JOBS, default=1, show_default=True,
              help="Processes mapping layers in parallel (results do not depend on it).")
@click.option("--store", "store_path", default="results/store.sqlite", show_default=True,
              help="Result store: finished layers are reused, never recomputed.")
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def run(arch_file, cons_files, workload, out_dir, objective, search, max_evals, seed, jobs,
        store_path, quiet):
    """Map every unique layer of a network and write layers.csv and totals.csv. Progress: one
    bar for the network and, with --jobs 1, one for the layer being searched."""
    from tqdm import tqdm

    from dse.mapper.search import SearchConfig
    from dse.pipeline.run import run_network
    from dse.pipeline.spec import load_arch, sibling_constraints
    from dse.pipeline.store import ResultStore
    from dse.workload_library import load_workload

    files = [arch_file, *sibling_constraints(arch_file), *cons_files]
    if not quiet and len(files) > 1:
        click.echo("constraints: " + ", ".join(files[1:]), err=True)
    arch = load_arch(files)
    network = load_workload(workload)
    cfg = SearchConfig(objective=objective, search=search, max_evals=max_evals, seed=seed)
    store = ResultStore(store_path)
    unique = len({s.key for s in network.unique_shapes()})
    bar = tqdm(total=unique, unit="layer", desc=network.name, disable=quiet, position=0)

    def on_layer(name: str, cached: bool) -> None:
        bar.set_postfix_str(f"{name}{' (stored)' if cached else ''}")
        bar.update(1)

    layer_bar = tqdm(total=cfg.max_evals, unit="map", disable=quiet or jobs > 1, position=1,
                     leave=False)

    def on_search(task):
        layer_bar.reset(total=cfg.max_evals)
        layer_bar.set_description(task.problem.name)

        def update(result, rate):
            layer_bar.n = result.evaluated
            layer_bar.set_postfix(per_s=f"{rate:,.0f}", refresh=False)
            layer_bar.refresh()
        return update

    out = Path(out_dir)
    rows, tot = run_network(network, arch, cfg, out, store, jobs=jobs, on_layer=on_layer,
                            on_search=on_search)
    layer_bar.close()
    bar.close()
    store.close()
    if not quiet:
        click.echo(f"{network.name} on {arch.name}: {tot['layers']} layers "
                   f"({tot['mapped_layers']} mapped), {tot['macs']:,} MACs, "
                   f"{tot['cycles']:,} cycles, {tot['energy_pJ'] / 1e6:,.3f} uJ, "
                   f"{tot['pJ_per_mac']:.3f} pJ/MAC; wrote {out}/layers.csv, totals.csv")
    failed = [r["layer"] for r in rows if r.get("status") not in ("ok",) and r.get("ops", 0) != 0]
    if failed:
        click.echo(f"no valid mapping for: {', '.join(failed)}", err=True)
        raise SystemExit(1)
