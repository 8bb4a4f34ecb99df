"""`dse bench`: measure mapper throughput and model speed on the built-in cases."""

from __future__ import annotations

import click


@click.command()
@click.option("--max-evals", type=int, default=50_000, show_default=True,
              help="Mappings per mapper case.")
@click.option("--objective", default="delay,energy", show_default=True,
              type=click.Choice(["edp", "energy", "delay", "delay,energy", "energy,delay"]),
              help="Objective of the mapper cases.")
@click.option("--no-bound-skip", "no_bound_skip", is_flag=True,
              help="Mapper cases evaluate every candidate (compare with bound-and-skip on).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-network", is_flag=True, help="Skip the ResNet-50 end-to-end case (~30 s).")
def bench(max_evals: int, objective: str, no_bound_skip: bool, as_json: bool,
          no_network: bool) -> None:
    """Evaluated mappings per second (one process) on the Eyeriss-like VGG layer and a
    ResNet-18 3x3 layer, the time of one model evaluation, and ResNet-50 end to end on the
    Eyeriss-like design (default search, --jobs 2, fresh store)."""
    import json

    from dse.bench import run_all

    results = run_all(max_evals, network=not no_network, objective=objective,
                      bound_skip=not no_bound_skip)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"{'case':48s} {'evaluated':>10s} {'skipped':>9s} {'wall_s':>8s} "
               f"{'evals/s':>10s} {'evals/cpu_s':>12s}")
    for name, r in results.items():
        cpu = f"{r['evals_per_cpu_s']:>12,.0f}" if "evals_per_cpu_s" in r else f"{'':>12s}"
        skipped = f"{r['skipped_by_bound']:>9,}" if "skipped_by_bound" in r else f"{'':>9s}"
        click.echo(f"{name:48s} {r['evaluated']:>10,} {skipped} {r['wall_s']:>8.2f} "
                   f"{r['evals_per_s']:>10,.0f} {cpu}")
