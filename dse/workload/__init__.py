"""Workloads: one layer as a Problem, layer builders, and networks as graphs of tensors."""
