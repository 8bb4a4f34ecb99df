"""Built-in energy estimation (no native binaries): `estimate(arch, model)` fills the energies an
architecture does not give, from the tables in dse/energy/data/ (sources in each row; the
scaling rules are in docs/energy.md)."""

from dse.energy.estimate import MODELS, estimate

__all__ = ["MODELS", "estimate"]
