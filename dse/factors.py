"""Integer factor helpers shared by the model (the DRAM lower bound) and the mapper (the
mapspace): every loop bound is split into integer factors."""

from __future__ import annotations

import functools
import math


@functools.lru_cache(maxsize=4096)
def divisors(n: int) -> list[int]:
    """Divisors of n in increasing order, in O(sqrt(n)) steps."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def ordered_factorizations(n: int, k: int) -> int:
    """How many ways n splits into k ordered positive factors."""
    total = 1
    m = n
    p = 2
    while p * p <= m:
        e = 0
        while m % p == 0:
            m //= p
            e += 1
        if e:
            total *= math.comb(e + k - 1, k - 1)
        p += 1
    if m > 1:
        total *= k
    return total
