"""Mapspace construction, batch evaluation and search strategies."""
