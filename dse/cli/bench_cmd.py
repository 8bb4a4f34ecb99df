"""`dse bench`: measure mapper throughput and model speed on the built-in cases."""

from __future__ import annotations

import click

from dse.cli.errors import COUNT, reports_spec_errors


@click.command()
@click.option("--max-evals", type=COUNT, default=50_000, show_default=True,
              help="Mappings per mapper case.")
@click.option("--objective", default="delay,energy", show_default=True,
              type=click.Choice(["edp", "energy", "delay", "delay,energy", "energy,delay"]),
              help="Objective of the mapper cases.")
@click.option("--no-bound-skip", "no_bound_skip", is_flag=True,
              help="Mapper cases evaluate every candidate (compare with bound-and-skip on).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-network", is_flag=True, help="Skip the ResNet-50 end-to-end case (~30 s).")
@click.option("--compare", "compare_rev", metavar="REV", default=None,
              help="Also run the cases of git revision REV (exported to a temporary folder) "
                   "back to back with this checkout and print the ratio.")
@click.option("--rounds", type=COUNT, default=3, show_default=True,
              help="With --compare: runs per side, alternating; medians are reported.")
@reports_spec_errors
def bench(max_evals: int, objective: str, no_bound_skip: bool, as_json: bool, no_network: bool,
          compare_rev: str | None, rounds: int) -> None:
    """Evaluated mappings per second (one process) on the Eyeriss-like VGG layer (dense and
    sparse) and a ResNet-18 3x3 layer, the time of one model evaluation, and ResNet-50 end to
    end on the Eyeriss-like design (default search, --jobs 2, fresh store)."""
    import json

    if compare_rev is not None:
        if objective != "delay,energy" or no_bound_skip:  # the other revision may lack them
            raise click.UsageError("--compare runs both trees' default cases; it does not take "
                                   "--objective or --no-bound-skip")
        _compare(compare_rev, max_evals, rounds, not no_network, as_json)
        return
    from dse.bench.run import run_all

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
    kernels = sorted({r["kernel"] for r in results.values() if "kernel" in r})
    if kernels:
        click.echo(f"model kernel: {', '.join(kernels)} (DSE_KERNEL=numpy selects the numpy "
                   "passes)")


def _compare(rev: str, max_evals: int, rounds: int, network: bool, as_json: bool) -> None:
    import json
    from pathlib import Path

    import dse
    from dse.bench.compare import compare

    this_tree = Path(dse.__file__).resolve().parent.parent
    commit, rows = compare(this_tree, rev, max_evals=max_evals, rounds=rounds, network=network,
                           progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({"rev": rev, "rev_commit": commit, "rounds": rounds,
                               "max_evals": max_evals,
                               "cases": [r.as_dict() for r in rows]}, indent=2))
        return

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def spread(samples: list[float]) -> str:
        return f"{min(samples):,.0f}-{max(samples):,.0f}" if samples else "-"

    click.echo(f"this checkout vs {rev} ({commit[:12]}), medians of {rounds} alternating runs, "
               f"{max_evals:,} mappings per mapper case; ratio = this / {rev} evals/s; "
               "ranges = lowest-highest evals/s over the runs; cpu = CPU seconds of the search "
               "process (mapper cases)")
    click.echo(f"{'case':48s} {'this evals/s':>13s} {'REV evals/s':>13s} {'ratio':>7s} "
               f"{'this wall_s':>11s} {'REV wall_s':>11s} {'wall speed-up':>13s} "
               f"{'this cpu_s':>10s} {'REV cpu_s':>10s} {'cpu speed-up':>12s} "
               f"{'this range':>15s} {'REV range':>15s}")
    for r in rows:
        click.echo(f"{r.case:48s} {num(r.this_evals_per_s, ',.0f'):>13s} "
                   f"{num(r.rev_evals_per_s, ',.0f'):>13s} {num(r.ratio, '.2f'):>7s} "
                   f"{num(r.this_wall_s, '.2f'):>11s} {num(r.rev_wall_s, '.2f'):>11s} "
                   f"{num(r.wall_speedup, '.2f'):>13s} {num(r.this_cpu_s, '.3f'):>10s} "
                   f"{num(r.rev_cpu_s, '.3f'):>10s} {num(r.cpu_speedup, '.2f'):>12s} "
                   f"{spread(r.this_samples):>15s} "
                   f"{spread(r.rev_samples):>15s}")
