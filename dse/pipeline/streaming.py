"""`dse run` on a streaming dataflow architecture: read or allocate the per-layer parallelism,
evaluate the pipeline, write layers.csv, skips.csv and totals.csv (docs/streaming.md)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dse import __version__
from dse.errors import SpecError, did_you_mean
from dse.pipeline.writers import atomic_write, csv_text
from dse.schedule.streaming import Par, StreamingArch, build_stages, evaluate

ALLOCATORS = ("exact", "proportional")
PAR_KEYS = ("och_par", "ich_par", "ow_par")
PLAN_KEYS = (*PAR_KEYS, "weight_memory")

LAYER_COLUMNS = [
    "network", "layer", "type", "arch", "point", "merged_layer", "absorbs_add", "ich", "och",
    "ih", "iw", "oh", "ow", "kernel", "work", "och_par", "ich_par", "ow_par", "cycles",
    "line_buffer_cycles", "stage_cycles", "bottleneck", "multipliers", "products_per_dsp",
    "dsp", "weight_bits", "weight_memory", "weight_bram36", "weight_uram", "line_buffer_bits",
    "line_buffer_bram36", "fifo_bits", "bram36", "uram", "energy_pJ"]
SKIP_COLUMNS = ["network", "add", "channels", "height", "width", "full_bits", "forwarded_bits",
                "used_bits", "saving_bits"]
TOTAL_COLUMNS = [
    "network", "arch", "point", "allocator", "macs", "cycles", "energy_pJ", "pJ_per_mac", "fps",
    "ii_cycles", "clock_hz", "latency_s",
    "latency_cycles", "bottleneck_layer", "multipliers", "dsp_used", "dsp_budget",
    "bram36_used", "bram36_budget", "uram_used", "uram_budget", "fits", "fps_per_dsp",
    "weight_bits", "line_buffer_bits", "fifo_bits", "skip_buffer_bits",
    "skip_buffer_full_bits", "skip_buffer_forwarded_bits", "skip_bram36", "skip_forwarding",
    "dsp_packing",
    "weight_bits_per_value", "power_W", "energy_per_image_J", "power_source", "explanation",
    "tool_version"]


def _par_value(value, layer: str, key: str, where: str) -> int:
    try:
        v = int(str(value).strip())
    except ValueError:
        raise SpecError(f"plan for '{layer}': {key} must be a whole number", file=where,
                        found=value) from None
    if v < 1:
        raise SpecError(f"plan for '{layer}': {key} must be at least 1", file=where, found=v)
    return v


def _par(vals: dict, layer: str, where: str) -> Par:
    from dse.schedule.streaming import WEIGHT_MEMORIES

    mem = str(vals.get("weight_memory", "auto") or "auto")
    if mem not in WEIGHT_MEMORIES:
        raise SpecError(f"plan for '{layer}': unknown weight_memory '{mem}'", file=where,
                        expected=", ".join(WEIGHT_MEMORIES),
                        hint=did_you_mean(mem, WEIGHT_MEMORIES))
    return Par(*(_par_value(vals.get(k, 1), layer, k, where) for k in PAR_KEYS), mem)


def load_plan(path: str | Path, layer_names: list[str],
              merged: dict[str, str] | None = None) -> dict[str, Par]:
    """A plan file: CSV with `layer` and any of och_par/ich_par/ow_par (missing = 1), or YAML
    `plan: {layer: {och_par: .., ich_par: .., ow_par: ..}}`. Unknown layers/keys are refused.
    A merged 1x1 shortcut (`merged`: its name -> host engine) may be listed if it agrees with
    its host, whose loop computes it."""
    merged = merged or {}
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the plan: {exc.strerror}", file=str(path)) from None
    entries: dict[str, dict] = {}
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        cols = reader.fieldnames or []
        if "layer" not in cols:
            raise SpecError("a plan CSV needs a `layer` column", file=str(path), line=1,
                            found=cols)
        for c in cols:
            if c != "layer" and c not in PLAN_KEYS:
                raise SpecError(f"unknown plan column '{c}'", file=str(path), line=1,
                                expected="layer, " + ", ".join(PLAN_KEYS),
                                hint=did_you_mean(c, PLAN_KEYS))
        for n, row in enumerate(reader, start=2):
            entries[row["layer"]] = {"_line": n, **{k: v for k, v in row.items()
                                                    if k != "layer" and v not in (None, "")}}
    else:
        from dse.spec.common import check_keys, require_mapping, where
        from dse.spec.yamlload import load_yaml_text

        doc = load_yaml_text(text, str(path))
        if not isinstance(doc, dict):
            raise SpecError("a plan YAML needs a top-level `plan:` mapping", file=str(path),
                            line=1)
        check_keys(doc, {"plan"}, "")
        node = require_mapping(doc.get("plan"), "plan", doc, "plan")
        for name, val in node.items():
            val = require_mapping(val, f"plan.{name}", node, name)
            check_keys(val, set(PLAN_KEYS), f"plan.{name}")
            entries[str(name)] = {"_line": where(node, name)["line"], **dict(val)}
    plan: dict[str, Par] = {}
    shortcuts: dict[str, tuple[Par, str]] = {}
    for name, vals in entries.items():
        at = f"{path}:{vals.pop('_line')}"
        if name in merged:
            shortcuts[name] = (_par(vals, name, at), at)
            continue
        if name not in layer_names:
            raise SpecError(f"the plan names layer '{name}', which has no engine", file=at,
                            expected="one of " + ", ".join(layer_names),
                            hint=did_you_mean(name, layer_names))
        plan[name] = _par(vals, name, at)
    for name, (par, at) in shortcuts.items():
        host = merged[name]
        if plan.setdefault(host, par) != par:
            raise SpecError(f"the plan gives the merged shortcut '{name}' a parallelism "
                            f"different from '{host}', whose loop computes it", file=at,
                            expected=str(plan[host]), found=str(par))
    return plan


def allocate(network, arch: StreamingArch, allocator: str) -> tuple[dict[str, Par], str]:
    from dse.schedule.allocate import allocate_exact, allocate_proportional

    if allocator == "proportional":
        res = allocate_proportional(network, arch)
        return res["plan"], res["why"]
    res = allocate_exact(network, arch)
    if res["plan"] is None:
        raise SpecError(f"{network.name} does not fit {arch.name}: {res['why']}")
    return res["plan"], res["why"]


def streaming_rows(network, arch: StreamingArch, result: dict, point: str = ""
                   ) -> tuple[list[dict], list[dict]]:
    tot = result["totals"]
    rows = []
    for r in result["rows"]:
        s, p = r["stage"], r["par"]
        rows.append({
            "network": network.name, "layer": s.name, "type": "engine", "arch": arch.name,
            "point": point, "merged_layer": s.merged, "absorbs_add": s.adds_skip,
            "ich": s.ich, "och": s.och, "ih": s.ih, "iw": s.iw, "oh": s.oh, "ow": s.ow,
            "kernel": f"{s.fh}x{s.fw}", "work": s.work, "och_par": p.och_par,
            "ich_par": p.ich_par, "ow_par": p.ow_par,
            "bottleneck": int(r["stage_cycles"] == tot["ii_cycles"]),
            **{k: r[k] for k in LAYER_COLUMNS if k in r}})
    for name, cycles in result["fixed"]:
        rows.append({"network": network.name, "layer": name, "type": "fixed stage",
                     "arch": arch.name, "point": point, "cycles": cycles, "stage_cycles": cycles,
                     "bottleneck": int(cycles == tot["ii_cycles"])})
    skips = [{"network": network.name, "add": s.add, "channels": s.channels, "height": s.height,
              "width": s.width, "full_bits": s.full_bits, "forwarded_bits": s.forwarded_bits,
              "used_bits": s.used_bits, "saving_bits": s.full_bits - s.forwarded_bits}
             for s in result["skips"]]
    return rows, skips


def run_streaming(network, arch: StreamingArch, out: Path, plan_file: str | None = None,
                  allocator: str = "exact", point: str = "") -> tuple[list, dict]:
    """Plan (given or allocated) -> evaluation -> layers.csv, skips.csv, totals.csv."""
    from dse.schedule.streaming import bits_of

    stages, _ = build_stages(network, arch.engine)
    if plan_file:
        plan = load_plan(plan_file, [s.name for s in stages],
                         {s.merged: s.name for s in stages if s.merged})
        why = f"per-layer parallelism from {plan_file}"
    else:
        plan, why = allocate(network, arch, allocator)
    result = evaluate(network, arch, plan)
    rows, skips = streaming_rows(network, arch, result, point)
    tot = {"network": network.name, "arch": arch.name, "point": point,
           "allocator": "plan file" if plan_file else allocator, **result["totals"],
           "skip_forwarding": int(arch.skip_forwarding),
           "dsp_packing": int(arch.engine.dsp_packing),
           "weight_bits_per_value": bits_of(network, arch)[0],
           "power_source": arch.power.source if arch.power else "",
           "explanation": why, "tool_version": __version__,
           # for `dse report`: cycles per image in steady state = II; energy only with power
           "macs": sum(lay.macs for lay in network.layers),
           "cycles": result["totals"]["ii_cycles"],
           "energy_pJ": (result["totals"]["energy_per_image_J"] * 1e12
                         if "energy_per_image_J" in result["totals"] else "")}
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["energy_pJ"] != "" else ""
    tot["fits"] = int(tot["fits"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "layers.csv", csv_text(rows, LAYER_COLUMNS))
    atomic_write(out / "skips.csv", csv_text(skips, SKIP_COLUMNS))
    atomic_write(out / "totals.csv", csv_text([tot], TOTAL_COLUMNS))
    return rows, tot


def summary_text(tot: dict, rows: list[dict]) -> str:
    """What `dse run` prints: FPS, II, bottleneck, resources, and why this allocation."""
    engines = [r for r in rows if r["type"] == "engine"]
    pars = ", ".join(f"{r['layer']} {r['och_par']}/{r['ich_par']}/{r['ow_par']}"
                     for r in engines)
    return "\n".join([
        f"{tot['network']} on {tot['arch']}: {tot['fps']:,.0f} FPS, II {tot['ii_cycles']:,} "
        f"cycles at {tot['clock_hz'] / 1e6:.2f} MHz, bottleneck {tot['bottleneck_layer']}, "
        f"latency {tot['latency_s'] * 1e6:,.1f} us",
        f"resources: {tot['dsp_used']} / {tot['dsp_budget']} DSP, {tot['bram36_used']} / "
        f"{tot['bram36_budget']} BRAM36, {tot['uram_used']} / {tot['uram_budget']} URAM, "
        f"{tot['multipliers']} multipliers"
        + ("" if tot["fits"] else "  ** exceeds the board **"),
        f"parallelism och/ich/ow: {pars}",
        f"allocation: {tot['explanation']}"])


def run_streaming_cli(arch_file: str, workload: str, out: Path, plan_file: str | None,
                      allocator: str, quiet: bool, echo) -> dict:
    """`dse run` for a streaming architecture file (loads, runs, prints the summary)."""
    import time

    from dse.spec.streaming_arch import load_streaming
    from dse.spec.workload_library import load_workload

    if plan_file and allocator != "exact":
        raise SpecError(f"--plan fixes the parallelism, so --allocator {allocator} would be "
                        "ignored", hint="give one of them")
    arch = load_streaming(arch_file)
    network = load_workload(workload)
    start = time.perf_counter()
    rows, tot = run_streaming(network, arch, out, plan_file, allocator)
    took = time.perf_counter() - start
    if not quiet:
        echo(summary_text(tot, rows))
        echo(f"took {took:.2f} s; wrote {out}/layers.csv, skips.csv, totals.csv")
    return tot
