"""`dse run --arch A --workload W --out DIR`: a whole network, every unique layer mapped once."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import COUNT, INTERRUPTED, JOBS, SEED, listing, reports_spec_errors
from dse.cli.options import generation_option, link_mode, link_transfer_options


@click.command()
@click.option("--arch", "arch_ref", required=True, metavar="NAME|FILE",
              help="Library architecture (see `dse arch list`) or YAML file; "
                   "NAME.constraints.yaml beside it is applied too.")
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
@generation_option
@click.option("--no-bound-skip", "no_bound_skip", is_flag=True,
              help="Evaluate every candidate instead of skipping those whose lower bounds "
                   "cannot win (same results either way; for timing and checks).")
@link_transfer_options
@click.option("--plan", "plan_file", default=None, type=click.Path(dir_okay=False),
              help="Streaming architectures: per-layer och_par/ich_par/ow_par (CSV or YAML) "
                   "instead of allocating.")
@click.option("--allocator", default="exact", show_default=True,
              type=click.Choice(["exact", "proportional"]),
              help="Streaming architectures: exact II-optimal search, or the 2023 NN2FPGA "
                   "proportional rule.")
@click.option("--schedule", "schedule", default="layerwise", show_default=True,
              metavar="layerwise|fused|FILE",
              help="How layers run: one by one (layerwise), in fused segments chosen greedily "
                   "(fused), or the segments of a schedule YAML (docs/fusion.md).")
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def run(arch_ref, cons_files, workload, out_dir, objective, search, max_evals, seed, jobs,
        store_path, generation, no_bound_skip, link_transfers, no_link_transfers, plan_file,
        allocator, schedule, quiet):
    """Map every unique layer of a network and write layers.csv and totals.csv. Progress: one
    bar for the network and, with --jobs 1, one for the layer being searched."""
    from tqdm import tqdm

    from dse.mapper.search import SearchConfig
    from dse.pipeline.fused import parse_schedule_option
    from dse.pipeline.run import run_network
    from dse.pipeline.spec import load_arch, sibling_constraints
    from dse.pipeline.store import ResultStore
    from dse.pipeline.work import Interrupted
    from dse.report.arch import display_path
    from dse.spec.arch_library import resolve as resolve_arch
    from dse.spec.streaming_arch import file_is_streaming
    from dse.spec.workload_library import load_workload

    arch_file = str(resolve_arch(arch_ref))
    schedule_spec = parse_schedule_option(schedule)

    if schedule_spec.kind != "layerwise" and (
            file_is_streaming(Path(arch_file))):
        raise click.UsageError("--schedule applies to loop-nest architectures only (a "
                               "streaming architecture runs every layer on its own engine)")
    if file_is_streaming(Path(arch_file)):  # one engine per layer: docs/streaming.md
        from dse.pipeline.streaming import run_streaming_cli

        run_streaming_cli(arch_file, workload, Path(out_dir), plan_file, allocator, quiet,
                          click.echo)
        return
    if plan_file or allocator != "exact":
        raise click.UsageError("--plan and --allocator apply to streaming architectures only")
    files = [arch_file, *sibling_constraints(arch_file), *cons_files]
    if not quiet and len(files) > 1:
        click.echo("constraints: " + ", ".join(map(display_path, files[1:])), err=True)
    arch = load_arch(files)
    network = load_workload(workload)
    cfg = SearchConfig(objective=objective, search=search, max_evals=max_evals, seed=seed,
                       generation=generation,
                       link_transfers=link_mode(link_transfers, no_link_transfers),
                       bound_skip=not no_bound_skip)
    out = Path(out_dir)
    if arch.arch.attributes.get("execution"):
        if schedule_spec.kind != "layerwise":
            raise click.UsageError("--schedule applies to loop-nest architectures only; "
                                   f"{arch.name} runs networks with its execution model")
        _run_execution(network, arch, out, quiet)
        return
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
            layer_bar.n = result.considered
            layer_bar.set_postfix(per_s=f"{rate:,.0f}", refresh=False)
            layer_bar.refresh()
        return update

    try:
        rows, tot = run_network(network, arch, cfg, out, store, jobs=jobs, on_layer=on_layer,
                                on_search=on_search)
    except Interrupted as exc:
        layer_bar.close()
        bar.close()
        store.close()
        click.echo(f"interrupted: {len(exc.missing)} layer(s) not mapped yet "
                   f"({listing(exc.missing)}); nothing written to {out}. "
                   f"{len(exc.done)} finished unique layer(s) are kept in {store_path}; run "
                   f"the same command again to finish.", err=True)
        raise SystemExit(INTERRUPTED) from None
    layer_bar.close()
    bar.close()
    seg_rows = None
    try:
        if schedule_spec.kind == "fused" and not _failed(rows):
            from dse.pipeline.fused import write_fused

            seg_rows, fused_tot = write_fused(out, network, arch, cfg, schedule_spec, store,
                                              rows, tot)
    finally:
        store.close()
    if schedule_spec.kind == "fused" and seg_rows is None:
        click.echo("fused schedule not evaluated: it needs every layer's layerwise mapping",
                   err=True)
    if not quiet:
        click.echo(f"{network.name} on {arch.name}"
                   f"{' (layerwise)' if seg_rows is not None else ''}: {tot['layers']} layers "
                   f"({tot['mapped_layers']} mapped), {tot['macs']:,} MACs, "
                   f"{tot['cycles']:,} cycles, {tot['energy_pJ'] / 1e6:,.3f} uJ, "
                   f"{tot['pJ_per_mac']:.3f} pJ/MAC; wrote {out}/layers.csv, totals.csv")
        if seg_rows is not None:
            ft = fused_tot
            saved = ft["layerwise_dram_bytes"] - ft["dram_bytes"]
            click.echo(f"fused: {len(seg_rows)} segment(s) over {ft['fused_layers']} layers; "
                       f"DRAM {ft['dram_bytes']:,} bytes vs {ft['layerwise_dram_bytes']:,} "
                       f"layerwise ({saved:,} saved); {ft['cycles']:,} cycles vs "
                       f"{ft['layerwise_cycles']:,}, {ft['energy_pJ'] / 1e6:,.3f} uJ; "
                       f"wrote {out}/segments.csv, schedule.yaml")
    # every layer was written; the ones the search found no mapping for make the run fail
    failed = _failed(rows)
    for r in failed:
        click.echo(f"layer {r['layer']}: {r['status']} ({r.get('reason') or 'no reason given'})",
                   err=True)
    if failed:
        click.echo(f"{len(failed)} of {len(rows)} layers have no valid mapping; see "
                   f"{out}/layers.csv", err=True)
        raise SystemExit(1)


def _failed(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") not in ("ok", None)
            and not str(r.get("status")).startswith("not mapped")]


def _run_execution(network, arch, out: Path, quiet: bool) -> None:
    """An architecture with `execution:`: the whole network under the chip's execution model
    (no mapping search, so no store and no progress bars)."""
    from dse.pipeline.run import run_execution

    rows, tot = run_execution(network, arch, out)
    if not quiet:
        lat = f"{tot['latency_s'] * 1e3:,.3f} ms at {tot['clock_hz'] / 1e6:g} MHz" \
            if tot["clock_hz"] else "no clock given"
        click.echo(f"{network.name} on {arch.name} ({tot['execution']} execution model): "
                   f"{tot['layers']} layers -> {tot['hw_layers']} hardware layers "
                   f"({tot['passthrough_layers']} pass-through, {tot['streaming_layers']} "
                   f"streaming), {tot['macs']:,} MACs, {tot['cycles']:,} cycles = {lat}; "
                   f"weights {tot['weight_bytes']:,} of {tot['weight_capacity_bytes']:,} bytes; "
                   f"wrote {out}/layers.csv, totals.csv")
