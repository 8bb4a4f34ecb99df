"""Whole networks, sweeps and the result store: the main job end to end."""
