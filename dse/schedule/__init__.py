"""Execution models beyond one loop nest per layer: whole-network schedules."""
