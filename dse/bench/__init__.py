"""Benchmarks: the speed figures `dse bench` prints, and revision-to-revision ratios."""
