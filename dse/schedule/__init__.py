"""Per-network schedules: how a whole network runs on hardware with a fixed dataflow.

An architecture opts in with `execution: <name>` (docs/formats.md); `EXECUTIONS` lists the
names dse knows. `dse run` then builds the schedule instead of mapping each layer.
"""

from __future__ import annotations

EXECUTIONS = {
    "max78000": "the MAX78000 CNN engine's whole-network execution model "
                "(dse/schedule/max78000.py)",
}
