"""Architecture: a chain of storage levels (outermost first) above an array of compute units.

Instances multiply down the chain: the fan-out between level i and the next inner level (or the
compute units) is instances[i+1] / instances[i], split over a mesh X and Y. Capacity follows
Timeloop: words = depth * block_size, block_size = width / datawidth (words per row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Energy per action, pJ per *vector* access (one row of `block_size` words), and where it came from.


@dataclass(frozen=True)
class Energy:
    pJ: float
    source: str


@dataclass(frozen=True)
class StorageLevel:
    name: str
    instances: int
    mesh_x: int
    mesh_y: int
    depth: int | None  # rows; None = unbounded (DRAM)
    width: int | None  # bits per row
    datawidth: int  # bits per word
    block_size: int  # words per row
    is_dram: bool = False
    is_dummy: bool = False  # zero-capacity level that only hosts spatial loops (v0.4 containers)
    multiple_buffering: float = 1.0
    read_bandwidth: float | None = None  # words/cycle per instance
    write_bandwidth: float | None = None
    shared_bandwidth: float | None = None
    energy: dict[str, Energy] = field(default_factory=dict)  # read/write/update/leak
    cls: str = ""
    attributes: dict = field(default_factory=dict)
    # Instances that are accessed together as one (Timeloop's cluster_size): energy is charged
    # per utilized cluster, not per utilized instance.
    cluster_size: int = 1

    def utilized_clusters(self, utilized_instances: int) -> int:
        """Timeloop's count: min(utilized instances, instances / cluster_size)."""
        return min(utilized_instances, self.instances // self.cluster_size)
    # instances exchange tiles with their mesh neighbours (native `neighbour_links: true`);
    # used by the `declared` link-transfer mode (dse.model.links)
    neighbour_links: bool = False
    area_um2: float | None = None  # per instance; None = not yet estimated (dse/energy/area.py)
    area_source: str = ""

    @property
    def capacity_words(self) -> int | None:
        """Words one instance holds; None when unbounded (DRAM)."""
        if self.is_dram or self.depth is None:
            return None
        return self.depth * self.block_size

    @property
    def effective_capacity_words(self) -> int | None:
        cap = self.capacity_words
        if cap is None:
            return None
        return int(cap // self.multiple_buffering)


@dataclass(frozen=True)
class ComputeLevel:
    name: str
    instances: int
    mesh_x: int
    mesh_y: int
    energy: dict[str, Energy] = field(default_factory=dict)  # compute, leak
    cls: str = ""
    datawidth: int | None = None
    area_um2: float | None = None  # per instance
    area_source: str = ""


@dataclass(frozen=True)
class Architecture:
    name: str
    levels: tuple[StorageLevel, ...]  # outermost (DRAM) first
    compute: ComputeLevel
    clock_hz: float | None = None
    technology: str | None = None
    source: str | None = None
    # Optional architecture-level settings read from native YAML (none affect the model):
    # parameters (resolved values), energy_model, rules, dimension_granularity. See
    # dse/arch/rules.py and docs/formats.md.
    attributes: dict = field(default_factory=dict)
    # link-transfer mode when none is asked for: `timeloop` (Timeloop inputs and hand-built
    # architectures), `declared` (native architectures). See dse.model.links.
    default_link_transfers: str = "timeloop"

    def level_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)

    def index(self, name: str) -> int:
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise KeyError(name)

    def fanout(self, i: int) -> tuple[int, int]:
        """(X, Y) fan-out from level i to the next inner level (or to the compute units)."""
        parent = self.levels[i]
        child = self.levels[i + 1] if i + 1 < len(self.levels) else self.compute
        return max(1, child.mesh_x // parent.mesh_x), max(1, child.mesh_y // parent.mesh_y)
