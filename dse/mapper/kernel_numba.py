"""The mapper's per-candidate work outside the model, compiled with numba: decoding a choice
of per-dimension factorizations into factor arrays (MapSpace.factor_arrays), ordering loops by
sort keys (MapSpace.perms_random / canonical_perm) and the lower bounds of bound-and-skip
(Bounds.lower). Imported only when dse.model.kernel selects numba; each function gives the same
arrays as the numpy code it stands for (tests/test_kernel.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def decode_factors(choice, flat_options, offsets, slot_level, slot_kind, L, T, SX, SY):
    """MapSpace.factor_arrays: row choice[b, d] of dim d's options -> factors per slot
    (slot_kind: 0 temporal, 1 mesh X, 2 mesh Y), 1 where no slot sets one."""
    B, D = choice.shape
    n_slots = slot_level.shape[0]
    for b in range(B):
        for i in range(L):
            for d in range(D):
                T[b, i, d] = 1
                SX[b, i, d] = 1
                SY[b, i, d] = 1
        for d in range(D):
            row = offsets[d] + choice[b, d]
            for j in range(n_slots):
                f = flat_options[row, j]
                if slot_kind[j] == 0:
                    T[b, slot_level[j], d] = f
                elif slot_kind[j] == 1:
                    SX[b, slot_level[j], d] = f
                else:
                    SY[b, slot_level[j], d] = f


@njit(cache=True, nogil=True)
def order_by_keys(keys, T, out):
    """Per (row, level): dims sorted by key, stably (np.argsort kind='stable'), after unit
    loops get the key 2e6 + dim. Every other key is below 2e6 (random keys in [0, 1), pinned
    loops at +-1e6 + position), so that is: the non-unit dims sorted by key, then the unit
    dims in dimension order. keys[i, b, d]: level-major, as the random keys are drawn."""
    L, B, D = keys.shape
    for b in range(B):
        for i in range(L):
            n = 0
            for d in range(D):  # non-unit dims, insertion-sorted (equal keys keep order)
                if T[b, i, d] != 1:
                    x = keys[i, b, d]
                    j = n - 1
                    while j >= 0 and keys[i, b, out[b, i, j]] > x:
                        out[b, i, j + 1] = out[b, i, j]
                        j -= 1
                    out[b, i, j + 1] = d
                    n += 1
            for d in range(D):
                if T[b, i, d] == 1:
                    out[b, i, n] = d
                    n += 1


@njit(cache=True, error_model="numpy", nogil=True)
def lower_bounds(T, SX, SY, keep_in, dummy, leak_pJ, compute_pJ, compulsory_pJ, linked,
                 block_t, operand_pJ, clusters, safety, energy, cycles):
    """Bounds.lower per row, the same float operations in the same order (see there for why
    each term is a lower bound)."""
    B, L, D = T.shape
    nT = keep_in.shape[2]
    fan = np.empty(L, dtype=np.int64)
    rep = np.empty(L, dtype=np.int64)
    keep = np.empty((L, nT), dtype=np.bool_)
    chain_ok = np.empty(L, dtype=np.bool_)
    for b in range(B):
        cyc = 1
        for i in range(L):
            for d in range(D):
                cyc *= T[b, i, d]
        cycles[b] = cyc
        for i in range(L):
            f = 1
            for d in range(D):
                f *= SX[b, i, d] * SY[b, i, d]
            fan[i] = f
            for t in range(nT):
                keep[i, t] = keep_in[b, i, t] and not dummy[i]
        rep[0] = 1
        for i in range(1, L):
            rep[i] = rep[i - 1] * fan[i - 1]
        leak = 0.0
        for i in range(L):
            any_kept = False
            for t in range(nT):
                if keep[i, t]:
                    any_kept = True
            term = leak_pJ[i] * rep[i] if any_kept else 0.0
            leak = term if i == 0 else leak + term
        e = leak * cyc + compute_pJ
        if L >= 2:
            acc = 0.0
            for t in range(nT):
                term = compulsory_pJ[t] if (keep[0, t] and keep[1, t] and fan[0] == 1) else 0.0
                acc = term if t == 0 else acc + term
            e = e + acc
        ok_below = True  # no link can act from level i down
        for i in range(L - 1, -1, -1):
            ok_below = ok_below and ((not linked[i]) or fan[i] == 1)
            chain_ok[i] = ok_below
        acc = 0.0
        for t in range(nT):
            inner = -1
            for i in range(L - 1, -1, -1):
                if keep[i, t]:
                    inner = i
                    break
            term = 0.0
            if inner >= 0 and chain_ok[inner]:
                blocks = -(-cyc // block_t[inner, t])
                charged = min(rep[inner], clusters[inner])
                term = blocks * operand_pJ[inner, t] * charged
            acc = term if t == 0 else acc + term
        e = e + acc
        energy[b] = e * safety
