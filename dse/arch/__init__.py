"""Architectures: the storage hierarchy, its spatial fan-out, and the rules of what it runs."""
