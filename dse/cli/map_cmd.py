"""`dse map FILE... --out DIR`: search the mapspace for the best mapping."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dse.cli.errors import COUNT, JOBS, SEED, reports_spec_errors
from dse.cli.options import generation_option, link_mode, link_transfer_options


def parse_duration(text: str | None) -> float | None:
    """Seconds from '60s', '2m', '90' (seconds); a zero or unreadable duration is a usage error."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,12})?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise click.BadParameter(f"'{text[:80]}' is not a duration like 60s, 2m or 90")
    value, unit = float(m.group(1)), m.group(2) or "s"
    seconds = value * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise click.BadParameter(f"'{text}' is not a positive duration")
    return seconds


def _duration_option(ctx: click.Context, param: click.Parameter, value: str | None):
    parse_duration(value)  # validated while parsing options: a usage error before any work
    return value


@click.command(name="map")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--objective", default=None,
              type=click.Choice(["edp", "energy", "delay", "delay,energy", "energy,delay"]),
              help="What to minimise (default: the spec's mapper metrics, else edp).")
@click.option("--search", "search", default=None,
              type=click.Choice(["exhaustive", "random", "auto"]),
              help="Search strategy (default: auto).")
@click.option("--max-evals", type=COUNT, default=None, help="Stop after this many mappings.")
@click.option("--time-limit", default=None, callback=_duration_option,
              help="Stop after this long, e.g. 60s or 2m.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--jobs", type=JOBS, default=1, show_default=True,
              help="Processes evaluating batches (results do not depend on it).")
@click.option("--pareto", is_flag=True, help="Also write the energy/cycles Pareto set.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override an architecture parameter, e.g. --set columns=3 (repeatable).")
@generation_option
@click.option("--no-bound-skip", "no_bound_skip", is_flag=True,
              help="Evaluate every candidate instead of skipping those whose lower bounds "
                   "cannot win (same results either way; for timing and checks).")
@link_transfer_options
@click.option("--quiet", "-q", is_flag=True)
@reports_spec_errors
def map_(files, objective, search, max_evals, time_limit, seed, jobs, pareto, out_dir, settings,
         generation, no_bound_skip, link_transfers, no_link_transfers, quiet):
    """Find the best mapping. FILES (architecture, problem, optional constraints, mapper
    settings, ERT) merge as in `dse model`. Writes mapping.yaml (native), map.yaml (Timeloop),
    levels.csv and summary.json for the best mapping, search.json, and pareto.csv."""
    from tqdm import tqdm

    from dse.mapper.search import SearchConfig
    from dse.model import evaluate
    from dse.pipeline.map import mapper_defaults, prepare, write_search_outputs
    from dse.pipeline.writers import level_rows, terminal_table
    from dse.spec.arch_library import parse_settings
    from dse.spec.build import load_spec

    params = parse_settings(settings) if settings else None
    spec0 = load_spec(files, need_mapping=False, parameters=params)
    for note in spec0.document.notes:
        click.echo(note, err=True)
    d = mapper_defaults(spec0)
    cfg = SearchConfig(
        objective=objective or d.objective or "edp",
        search=search or d.search or "auto",
        max_evals=max_evals if max_evals is not None else d.max_evals,
        time_limit=parse_duration(time_limit), seed=seed, jobs=max(1, jobs), pareto=pareto,
        generation=generation,
        link_transfers=link_mode(link_transfers, no_link_transfers),
        bound_skip=not no_bound_skip,
    )
    spec, searcher = prepare(files, cfg, params)
    for note in spec.notes:
        click.echo(f"note: {note}", err=True)
    bar = tqdm(total=cfg.max_evals, unit="map", disable=quiet, dynamic_ncols=True,
               mininterval=0.5)

    def progress(result, rate):
        bar.n = result.considered  # what --max-evals counts
        best = result.best
        bar.set_postfix(valid=result.valid, per_s=f"{rate:,.0f}",
                        best=("-" if best is None else
                              f"{best.energy_pJ:.4g}pJ/{best.cycles:,}cyc"), refresh=False)
        bar.refresh()

    searcher.progress = progress
    result = searcher.run()
    bar.close()
    out = Path(out_dir)
    info = write_search_outputs(out, spec, searcher, result, cfg)
    if result.interrupted:
        click.echo("interrupted: wrote the best mapping found so far", err=True)
    if result.best is None:
        click.echo(f"no valid mapping among {result.evaluated:,} evaluated; rejected: "
                   + ", ".join(f"{k} {v:,}" for k, v in info["rejected"].items() if v), err=True)
        if result.smallest_change:
            click.echo(f"smallest change that admits one: {result.smallest_change}", err=True)
        raise SystemExit(1)
    if not quiet:
        mapping = searcher.mapping_of(result.best)
        ev = evaluate(spec.problem, spec.arch, mapping, link_transfers=cfg.link_transfers,
                      generation=generation)
        click.echo(terminal_table(ev, level_rows(ev, spec.arch)))
        skipped = (f", {result.skipped_by_bound:,} more skipped by bound"
                   if result.skipped_by_bound else "")
        click.echo(f"searched {result.evaluated:,} mappings ({result.valid:,} valid{skipped}) "
                   f"in {result.wall_s:.1f} s, {info['evals_per_s']:,.0f}/s; wrote {out}/")
