"""Text tables and plots of the ARCHON study (`dse archon`): per block, dense / sparse / ARCHON
cycles and energy side by side; per network, the speed-ups beside the published ones."""

from __future__ import annotations

from pathlib import Path


def _num(v, fmt: str = ",.0f") -> str:
    return "-" if v == "" or v is None else format(v, fmt)


def _times(v) -> str:
    return "-" if v == "" or v is None else f"{v:.3f}x"


def block_table(rows: list[dict]) -> str:
    """One study's rows like the artifact's result.csv, with a total line."""
    head = (f"{'row':<11} {'dense_cyc':>10} {'sparse_cyc':>10} {'archon_cyc':>10}  "
            f"{'dense_uJ':>9} {'sparse_uJ':>9} {'archon_uJ':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['row']:<11} {_num(r['dense_cycles']):>10} "
                     f"{_num(r['sparse_cycles']):>10} {_num(r['archon_cycles']):>10}  "
                     f"{_num(r['dense_energy_uJ'], ',.2f'):>9} "
                     f"{_num(r['sparse_energy_uJ'], ',.2f'):>9} "
                     f"{_num(r['archon_energy_uJ'], ',.2f'):>9}")
    return "\n".join(lines)


def speedup_table(speedups: list[dict], references: dict[tuple[str, str], dict]) -> str:
    """Whole-network speed-ups, ours beside the paper's / the artifact's where known."""
    head = (f"{'network':<10} {'dataset':<9} {'dense_cyc':>10} {'sparse_cyc':>10} "
            f"{'archon_cyc':>10} {'vs_dense':>8} {'vs_sparse':>9}  {'paper':>11}  "
            f"{'artifact':>13}  {'E dense/sparse/archon uJ':>26}  {'artifact E uJ':>16}")
    lines = [head, "-" * len(head)]
    for s in speedups:
        ref = references.get((s["network"], s["dataset"]), {})
        paper = (f"{ref['paper_speedup_dense']:.1f}x/{ref['paper_speedup_sparse']:.1f}x"
                 if "paper_speedup_dense" in ref else "-")
        art = (f"{ref['artifact_speedup_dense']:.3f}x/{ref['artifact_speedup_sparse']:.3f}x"
               if "artifact_speedup_dense" in ref else "-")
        energy = "/".join(_num(s[k], ",.0f") for k in ("dense_energy_uJ", "sparse_energy_uJ",
                                                      "archon_energy_uJ"))
        art_e = "/".join(_num(ref[f"artifact_energy_{k}_uJ"]) for k in ("dense", "sparse",
                                                                        "archon")) \
            if "artifact_energy_dense_uJ" in ref else "-"
        lines.append(
            f"{s['network']:<10} {s['dataset']:<9} {_num(s['dense_cycles']):>10} "
            f"{_num(s['sparse_cycles']):>10} {_num(s['archon_cycles']):>10} "
            f"{_times(s['speedup_vs_dense']):>8} {_times(s['speedup_vs_sparse']):>9}"
            f"  {paper:>11}  {art:>13}  {energy:>26}  {art_e:>16}")
    return "\n".join(lines)


def plots(out: Path, rows: list[dict], speedups: list[dict]) -> list[str]:
    """Per-study block cycles (grouped bars, log scale) and the speed-up chart; nothing (and
    no error) without matplotlib."""
    from dse.report import plots as P

    if not P.available():
        return []
    written = []
    studies = sorted({(r["network"], r["dataset"]) for r in rows})
    colours = {"dense": "#4c72b0", "sparse": "#dd8452", "archon": "#55a868"}
    for net, ds in studies:
        rs = [r for r in rows if (r["network"], r["dataset"]) == (net, ds)]
        fig = P._figure(max(6.0, 0.35 * len(rs)), 3.2)
        ax = fig.add_subplot()
        width = 0.27
        for i, kind in enumerate(("dense", "sparse", "archon")):
            xs = [j + (i - 1) * width for j in range(len(rs))]
            ys = [r[f"{kind}_cycles"] or 0 for r in rs]
            ax.bar(xs, ys, width, label=kind, color=colours[kind])
        ax.set_yscale("log")
        ax.set_xticks(range(len(rs)), [r["row"] for r in rs], rotation=90, fontsize=7)
        ax.set_ylabel("cycles")
        ax.set_title(f"{net} / {ds}: cycles per block and head/tail layer")
        ax.legend(fontsize=7)
        written.append(P._save(fig, out, P.file_stem(f"blocks_{net}_{ds}")))
    sp = [s for s in speedups if s["speedup_vs_dense"] != ""]
    if sp:
        fig = P._figure(5.5, 3.0)
        ax = fig.add_subplot()
        labels = [f"{s['network']}\n{s['dataset']}" for s in sp]
        xs = range(len(sp))
        ax.bar([x - 0.2 for x in xs], [s["speedup_vs_dense"] for s in sp], 0.4,
               label="vs dense", color=colours["dense"])
        ax.bar([x + 0.2 for x in xs], [s["speedup_vs_sparse"] for s in sp], 0.4,
               label="vs sparse", color=colours["sparse"])
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(list(xs), labels, fontsize=7)
        ax.set_ylabel("ARCHON speed-up (cycles)")
        ax.legend(fontsize=7)
        written.append(P._save(fig, out, "speedups"))
    return written
