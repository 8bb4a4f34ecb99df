"""dse: a design-space explorer for DNN accelerators (Timeloop-compatible loop-nest model)."""

__version__ = "0.1.0"
