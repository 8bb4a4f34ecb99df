"""Command-line interface. Subcommands live in their own modules and load on first use, so
`dse --version` starts without importing numpy, pandas or yaml."""

from __future__ import annotations

import importlib

import click

from dse import __version__

COMMANDS = {
    "model": ("dse.cli.model_cmd", "model", "Evaluate one mapping (Timeloop-compatible model)."),
    "archon": ("dse.cli.archon_cmd", "archon",
               "ARCHON study: dense, sparse and predictive-fusion cycles/energy per block."),
    "arch": ("dse.cli.arch_cmd", "arch",
             "Architecture library: list, show (hierarchy, peak MACs, energy sources)."),
    "convert": ("dse.cli.convert_cmd", "convert", "Convert Timeloop YAML to dse's native YAML."),
    "map": ("dse.cli.map_cmd", "map_", "Search the mapspace for the best mapping."),
    "bench": ("dse.cli.bench_cmd", "bench", "Measure mapper throughput and model speed."),
    "run": ("dse.cli.run_cmd", "run", "Map a whole network: layers.csv and totals.csv."),
    "report": ("dse.cli.report_cmd", "report",
               "Merge result folders: report.csv, per-layer CSV, report.md, plots."),
    "sweep": ("dse.cli.sweep_cmd", "sweep", "Run a grid of architectures x workloads x params."),
    "workload": ("dse.cli.workload_cmd", "workload",
                 "Workload library: list, show, stats, export --timeloop."),
    "import": ("dse.cli.import_cmd", "import_",
               "Import an ONNX model or Timeloop problem files as a network YAML."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, "--version", prog_name="dse", message="%(prog)s %(version)s")
def main() -> None:
    """dse: design-space explorer for DNN accelerators."""


if __name__ == "__main__":  # pragma: no cover
    main()
