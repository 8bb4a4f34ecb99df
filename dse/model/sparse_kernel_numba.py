"""The batch sparse step (dse.model.sparse_batch.SparseStep.apply), compiled with numba, for
the mapper: per row only what it scores (energy, cycles, utilization, and whether the levels
that decompress or compress support it).

Two compiled passes with the density models in between, in numpy (imported only through
dse.model.kernel; the numpy step stays the reference, tests/test_sparse_kernel.py):
1. `structure_rows`: the loop nest's part (SparseStep._optimizations' holders and condition
   boxes, _shapes' rank fibers): per row the tile sizes whose emptiness decides each gating or
   skipping, and each format's rank shapes.
2. numpy (SparseStep._between): P(empty) of those tiles, formats' expected units per rank,
   vector-access corrections.
3. `counts_rows`: actual / gated / skipped counts, metadata traffic, codecs, compute classes,
   energy per action, bandwidth-limited cycles and leakage, in apply's order and with its
   float operations, so the numbers are identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dse.model.kernel_numba import _tile_size, bandwidth_slowdown

EPS = 1e-9  # dse.model.sparse_batch.EPS


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _floor(x):
    return np.floor(x + EPS)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _ceil(x):
    return np.ceil(x - EPS)


@njit(cache=True, error_model="numpy", nogil=True)
def _nest(T, S, perm, b, L, D, dims, bounds, levels):
    """LoopNest for row b in canonical spatial order: innermost first, per level its spatial
    loops (dimension order) inside its temporal ones (perm, innermost first)."""
    k = 0
    for i in range(L - 1, -1, -1):
        for d in range(D):
            dims[k] = d
            bounds[k] = S[b, i, d]
            levels[k] = i
            k += 1
        for j in range(D):
            d = perm[b, i, j]
            dims[k] = d
            bounds[k] = T[b, i, d]
            levels[k] = i
            k += 1


@njit(cache=True, error_model="numpy", nogil=True)
def _holders(keep, t, act_t, act_level, h):
    """SparseStep._optimizations: the level where each of t's optimizations acts (the
    innermost level keeping t at or above the declared one; -1 for none)."""
    for a in range(act_t.shape[0]):
        if act_t[a] != t:
            continue
        h[a] = -1
        for i in range(act_level[a] + 1):
            if keep[i, t]:
                h[a] = i


@njit(cache=True, error_model="numpy", nogil=True)
def structure_rows(T, S, perm, keep_in, size, relevant, nz_dim, nz_coef, nz_count, n_ranks,
                   level_block, act_t, act_level, act_cond, act_n_cond, cslot, fslot,
                   f_ranks, f_flat, cond_size, shapes):
    """Pass 1. `cond_size` (B, slots): words of condition tensor c in the condition box of
    tensor t at level i (slot cslot[t, i, c]) on rows where one of t's optimizations acts at
    i, else 0. `shapes` (B, formats, ranks): each format's fiber shapes, outermost first."""
    B, L, D = T.shape
    nT = keep_in.shape[2]
    K = 2 * L * D
    dims = np.empty(K, dtype=np.int64)
    bounds = np.empty(K, dtype=np.int64)
    levels = np.empty(K, dtype=np.int64)
    box = np.ones((L + 1, D), dtype=np.int64)
    cbox = np.ones((1, D), dtype=np.int64)
    child = np.empty((L, nT), dtype=np.int64)
    h = np.full(act_t.shape[0], -1, dtype=np.int64)
    for b in range(B):
        keep = keep_in[b]
        _nest(T, S, perm, b, L, D, dims, bounds, levels)
        for d in range(D):
            box[L, d] = 1
        for i in range(L - 1, -1, -1):
            for d in range(D):
                box[i, d] = box[i + 1, d] * (T[b, i, d] * S[b, i, d])
        for t in range(nT):  # SparseStep._children
            nxt = L
            for i in range(L - 1, -1, -1):
                child[i, t] = nxt
                if keep[i, t]:
                    nxt = i
        for t in range(nT):
            _holders(keep, t, act_t, act_level, h)
            for i in range(L):
                acting = False
                for a in range(act_t.shape[0]):
                    if act_t[a] == t and h[a] == i:
                        acting = True
                if not acting:
                    continue
                # SparseStep._condition_box
                ch = child[i, t]
                for d in range(D):
                    cbox[0, d] = box[ch, d]
                own = _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, cbox, 0)
                grow = max(1, level_block[i] // max(own, 1))
                if grow > 1:
                    for k in range(K):  # SparseStep._inner_dim
                        if levels[k] >= i and relevant[t, dims[k]] and bounds[k] > 1:
                            cbox[0, dims[k]] *= grow
                            break
                for a in range(act_t.shape[0]):
                    if act_t[a] != t or h[a] != i:
                        continue
                    for j in range(act_n_cond[a]):
                        c = act_cond[a, j]
                        cond_size[b, cslot[t, i, c]] = _tile_size(nz_dim, nz_coef, nz_count,
                                                                  n_ranks, c, cbox, 0)
        for i in range(L):  # SparseStep._shapes
            for t in range(nT):
                f = fslot[i, t]
                if f < 0:
                    continue
                n = f_ranks[f]
                for r in range(shapes.shape[2]):
                    shapes[b, f, r] = 1
                if f_flat[f]:
                    ch = child[i, t]
                    child_tile = 1
                    if ch < L:
                        child_tile = _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, box, ch)
                    shapes[b, f, n - 1] = child_tile
                    if n > 1:
                        shapes[b, f, n - 2] = max(size[b, i, t] // max(child_tile, 1), 1)
                    continue
                pos = 0
                for k in range(K):  # the p-th loop over t's dims from inside: rank n-1-p
                    if levels[k] >= i and relevant[t, dims[k]] and bounds[k] > 1:
                        r = max(n - 1 - pos, 0)
                        shapes[b, f, r] *= bounds[k]
                        pos += 1


@njit(cache=True, error_model="numpy", nogil=True)
def counts_rows(T, S, keep_in, size, counts, replication, p_empty, units, ratio,
                rw, density, compressed, act_t, act_level, act_kind, act_cond, act_n_cond,
                cslot, fslot, f_ranks, md_bits, operands, enz_density, has_fmt, dense,
                compute_gating, compute_skipping, macs, e_action, e_gated, e_skipped, e_md,
                e_decompress, e_compress, md_width, datawidth, block_t, clusters, has_bits,
                bw_scale, rbw, wbw, sbw, e_leak, e_compute, e_gated_compute,
                e_skipped_compute, instances, supports_decompress, supports_compress,
                energy_out, cycles_out, util_out, ok_out):
    """Pass 3: SparseStep.apply and _micro_architecture per row, totals only."""
    B, L, D = T.shape
    nT = keep_in.shape[2]
    nA = act_t.shape[0]
    R = max(units.shape[2], 1)
    h = np.full(nA, -1, dtype=np.int64)
    kind = np.zeros((L, nT), dtype=np.int64)
    p_own = np.zeros((L, nT))
    has_own_l = np.zeros((L, nT), dtype=np.bool_)
    actual = np.zeros((L, nT, 3), dtype=np.int64)
    gated = np.zeros((L, nT, 3), dtype=np.int64)
    skipped = np.zeros((L, nT, 3), dtype=np.int64)
    md = np.zeros((L, nT, 3, R, 3, 2))
    decomp = np.zeros((L, nT), dtype=np.int64)
    comp = np.zeros((L, nT), dtype=np.int64)
    saf_on = np.zeros(nT, dtype=np.bool_)
    saf_p = np.zeros(nT)
    n_ops = operands.shape[0]
    enz = np.zeros(n_ops)
    has_md = np.zeros(n_ops, dtype=np.bool_)
    bits = np.zeros((3, 3))
    energy_l = np.zeros((L, nT))
    md_read = np.zeros(L)
    md_write = np.zeros(L)
    for b in range(B):
        keep = keep_in[b]
        computes = macs
        saf_row = False
        for t in range(nT):
            saf_on[t] = False
            saf_p[t] = 0.0
        for t in range(nT):
            d = density[t]
            # SparseStep._optimizations: kind and P(ineffectual) of the first optimization
            # acting at each level
            _holders(keep, t, act_t, act_level, h)
            for i in range(L):
                kind[i, t] = 0
                has_own_l[i, t] = False
                p_eff = 1.0
                for a in range(nA):
                    if act_t[a] != t or h[a] != i:
                        continue
                    for j in range(act_n_cond[a]):
                        p_eff = p_eff * (1.0 - p_empty[b, cslot[t, i, act_cond[a, j]]])
                    if not has_own_l[i, t]:
                        kind[i, t] = act_kind[a]
                    has_own_l[i, t] = True
                p_own[i, t] = 1.0 - p_eff if has_own_l[i, t] else np.nan
            p_above = 0.0
            parent_compressed = False
            parent_upd = 0
            has_parent = False
            for i in range(L):
                k_i = keep[i, t]
                po = p_own[i, t]
                has = has_own_l[i, t]
                p_cond = 0.0
                if has and p_above < 1.0:
                    p_cond = 1.0 - (1.0 - po) / (1.0 - p_above)
                p_here = p_cond if has else 0.0
                gating = kind[i, t] == 1
                skipping = kind[i, t] == 2
                comp_here = compressed[i, t]
                for k in range(3):
                    x = np.int64(counts[b, i, t, k])
                    if comp_here:
                        x = x - np.int64(_floor(x * (1.0 - d)))
                    x = x - np.int64(_floor(x * p_above))
                    gated[i, t, k] = 0
                    skipped[i, t, k] = 0
                    if k == 1 or not has:
                        actual[i, t, k] = x
                        continue
                    if k == 0 and rw[t]:
                        off = np.int64(_ceil(x * p_here))
                    else:
                        off = np.int64(_floor(x * p_here))
                    actual[i, t, k] = x - off
                    if gating:
                        gated[i, t, k] = off
                    if skipping:
                        skipped[i, t, k] = off
                f = fslot[i, t]
                if f >= 0:  # SparseStep._metadata: traffic per kind and rank
                    tile = size[b, i, t]
                    kept = tile > 0
                    tile_1 = max(tile, 1)
                    for k in range(3):
                        a_k = np.int64(counts[b, i, t, k])
                        for r in range(f_ranks[f]):
                            for j in range(2):
                                x = 0.0
                                if kept:
                                    x = np.ceil(units[b, f, r, j] * a_k / tile_1)
                                x = x - _floor(x * p_above)
                                md[i, t, k, r, 1, j] = 0.0
                                md[i, t, k, r, 2, j] = 0.0
                                if k == 1 or not has:
                                    md[i, t, k, r, 0, j] = x
                                    continue
                                off_f = _floor(x * p_here)
                                md[i, t, k, r, 0, j] = x - off_f
                                if gating:
                                    md[i, t, k, r, 1, j] = off_f
                                if skipping:
                                    md[i, t, k, r, 2, j] = off_f
                codec = k_i and has_parent and parent_compressed and not comp_here
                decomp[i, t] = actual[i, t, 1] if codec else 0
                comp[i, t] = parent_upd if (codec and rw[t]) else 0
                if k_i:
                    parent_compressed = comp_here
                    parent_upd = actual[i, t, 2]
                    has_parent = True
                    if has:
                        p_above = po
            if not rw[t]:  # the operand's own storage optimization reaches the computes
                innermost = -1
                for a in range(nA):
                    if act_t[a] == t:
                        innermost = max(innermost, h[a])
                if innermost >= 0:
                    saf_row = True
                    p = p_own[innermost, t]
                    computes = computes - np.int64(_floor(computes * p))
                    saf_on[t] = True
                    saf_p[t] = np.rint(p * 1e6) / 1e6
        # SparseStep._classify and classify_operand_states
        g_comp = 0
        s_comp = 0
        if n_ops > 0 and (n_ops == 2 or not saf_row):
            for k in range(n_ops):
                t = operands[k]
                inner = L - 1
                for i in range(L - 1, -1, -1):
                    if keep[i, t]:
                        inner = i
                        break
                has_md[k] = has_fmt[inner, t] and not dense[t]
                dk = enz_density[k]
                enz[k] = dk
                if n_ops == 2:
                    other = operands[1 - k]
                    cond = 1.0 - saf_p[other] if saf_on[other] else 1.0
                    enz[k] = min(max(dk / cond, 0.0), 1.0) if cond > 0 else 1.0
            p_gate = 0.0
            p_skip = 0.0
            p_none = 0.0
            n_states = 3 ** n_ops
            for s in range(n_states):
                p = 1.0
                n_absent = 0
                n_zero = 0
                for k in range(n_ops):  # first operand slowest, as itertools.product
                    state = (s // 3 ** (n_ops - 1 - k)) % 3
                    if state == 0:
                        v = enz[k]
                    elif state == 1:
                        v = 0.0 if has_md[k] else 1.0 - enz[k]
                        n_zero += 1
                    else:
                        v = 1.0 - enz[k] if has_md[k] else 0.0
                        n_absent += 1
                    p = p * v
                if n_absent == n_ops:
                    p_none += p
                elif n_absent > 0:
                    if compute_skipping:
                        p_skip += p
                    elif compute_gating:
                        p_gate += p
                elif n_zero > 0 and compute_gating:
                    p_gate += p
            skip_n = np.int64(np.floor(computes * p_skip + 1e-9))
            gate_n = np.int64(np.floor(computes * p_gate + 1e-9))
            none_n = np.int64(np.floor(computes * p_none + 1e-9))
            computes = computes - skip_n - gate_n - none_n
            g_comp = gate_n
            s_comp = skip_n
        # SparseStep._micro_architecture: energy per action, bandwidth, leakage
        for i in range(L):
            md_read[i] = 0.0
            md_write[i] = 0.0
        ok = True
        for i in range(L):
            for t in range(nT):
                if not keep[i, t]:
                    energy_l[i, t] = 0.0
                    continue
                blk = block_t[i, t]
                e = 0.0
                for k in range(3):
                    term = (np.ceil(actual[i, t, k] / blk) * e_action[i, k]
                            + np.ceil(gated[i, t, k] / blk) * e_gated[i, k]
                            + np.ceil(skipped[i, t, k] / blk) * e_skipped[i, k])
                    e = term if k == 0 else e + term
                e = e * ratio[b, i, t]
                f = fslot[i, t]
                if f >= 0:
                    for k in range(3):
                        for w in range(3):
                            acc = 0.0
                            for r in range(f_ranks[f]):
                                acc = acc + (md_bits[f, r, 0] * md[i, t, k, r, w, 0]
                                             + md_bits[f, r, 1] * md[i, t, k, r, w, 1])
                            bits[k, w] = np.rint(acc)
                    e_md_sum = 0.0
                    for k in range(3):
                        for w in range(3):
                            term = np.ceil(bits[k, w] / md_width[i]) * e_md[i, k, w]
                            e_md_sum = term if (k == 0 and w == 0) else e_md_sum + term
                    e = e + e_md_sum
                    dw = max(1, datawidth[i])
                    md_read[i] += (bits[0, 0] + bits[0, 1]) // dw
                    md_write[i] += (((bits[1, 0] + bits[1, 1]) + bits[2, 0]) + bits[2, 1]) // dw
                e = e + decomp[i, t] * e_decompress[i] + comp[i, t] * e_compress[i]
                energy_l[i, t] = e
                if decomp[i, t] > 0 and not supports_decompress[i]:
                    ok = False
                if comp[i, t] > 0 and not supports_compress[i]:
                    ok = False
        used = 1
        for i in range(L):
            for d in range(D):
                used *= S[b, i, d]
        used = max(used, 1)
        compute_cycles = -(-(computes + g_comp) // used)
        cc = max(compute_cycles, 1)
        worst = 0
        for i in range(L):
            rsum = 0.0
            wsum = 0.0
            for t in range(nT):
                rd_t = 0.0
                wr_t = 0.0
                if keep[i, t]:
                    if has_bits:
                        rd_t = (actual[i, t, 0] + gated[i, t, 0]) * bw_scale[i, t]
                        wr_t = ((actual[i, t, 1] + gated[i, t, 1]) * bw_scale[i, t]
                                + (actual[i, t, 2] + gated[i, t, 2]) * bw_scale[i, t])
                    else:
                        rd_t = float(actual[i, t, 0] + gated[i, t, 0])
                        wr_t = (float(actual[i, t, 1] + gated[i, t, 1])
                                + float(actual[i, t, 2] + gated[i, t, 2]))
                if t == 0:  # metadata words travel as tensor 0's (apply's demand array)
                    if has_bits:
                        rd_t = rd_t + md_read[i]
                        wr_t = ((actual[i, t, 1] + gated[i, t, 1]) * bw_scale[i, t]
                                + md_write[i] + (actual[i, t, 2] + gated[i, t, 2])
                                * bw_scale[i, t]) if keep[i, t] else (md_write[i] + 0.0)
                    else:
                        rd_t = rd_t + md_read[i]
                        wr_t = ((float(actual[i, t, 1] + gated[i, t, 1]) + md_write[i])
                                + float(actual[i, t, 2] + gated[i, t, 2])) if keep[i, t] \
                            else (md_write[i] + 0.0)
                rsum = rd_t if t == 0 else rsum + rd_t
                wsum = wr_t if t == 0 else wsum + wr_t
            slow = bandwidth_slowdown(rsum / cc, wsum / cc, rbw[i], wbw[i], sbw[i])
            lc = np.int64(np.ceil(cc / slow))
            worst = lc if i == 0 else max(worst, lc)
        cyc = max(cc, worst)
        if compute_cycles == 0:
            cyc = 0
        level_sum = 0.0
        for i in range(L):
            charged = min(replication[b, i], clusters[i])
            lsum = 0.0
            any_kept = False
            for t in range(nT):
                et = energy_l[i, t] * charged
                lsum = et if t == 0 else lsum + et
                if keep[i, t]:
                    any_kept = True
            lk = e_leak[i] * cyc * replication[b, i] if any_kept else 0.0
            lsum = lsum + lk
            level_sum = lsum if i == 0 else level_sum + lsum
        compute_energy = (computes * e_compute + g_comp * e_gated_compute
                          + s_comp * e_skipped_compute)
        energy_out[b] = compute_energy + level_sum
        cycles_out[b] = cyc
        util_out[b] = (computes + g_comp) / (instances * max(cyc, 1)) if cyc > 0 else 0.0
        ok_out[b] = ok


@njit(cache=True, error_model="numpy", nogil=True)
def capacity_rows(T, SX, SY, keep_in, nz_dim, nz_coef, nz_count, n_ranks, dummy,
                  placed_inside, above_backing, at_backing, backing, relevant, cap, has_bits,
                  bits_t, datawidth, fanout, occ_mode, occ_param, cap_ok_out, fanout_ok_out,
                  placement_ok_out, overflow):
    """SparseBatchModel._word_overflow (in bits with per-tensor word widths) and the fan-out
    and placement checks per row, without
    the numpy nest pass: tiles (BatchModel._tiles) and their words kept (SparseStep.occupancy:
    occ_mode per (level, tensor) 0 the whole tile, 1 ceil(S d) (fixed_structured, param d),
    2 min(S, nnz) (hypergeometric, param nnz))."""
    B, L, D = T.shape
    nT = keep_in.shape[2]
    box = np.ones((L + 1, D), dtype=np.int64)
    for b in range(B):
        for i in range(L - 1, -1, -1):
            for d in range(D):
                box[i, d] = box[i + 1, d] * (T[b, i, d] * (SX[b, i, d] * SY[b, i, d]))
        cap_ok = True
        for i in range(L):
            used = 0
            for t in range(nT):
                k = keep_in[b, i, t] and not dummy[i]
                if placed_inside:
                    k = (k and not above_backing[i, t]) or at_backing[i, t]
                if not k:
                    continue
                s = _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, box, i)
                mode = occ_mode[i, t]
                if mode == 1:
                    s = np.int64(np.ceil(s * occ_param[i, t]))
                elif mode == 2:
                    s = min(s, np.int64(occ_param[i, t]))
                used += s * bits_t[i, t] if has_bits else s
            over = 0
            if cap[i] >= 0:
                if has_bits:  # in bits, rounded up to words (BatchModel.evaluate)
                    over = max(used - cap[i] * datawidth[i], 0)
                    over = -(-over // datawidth[i])
                else:
                    over = max(used - cap[i], 0)
            overflow[b, i] = over
            if over != 0:
                cap_ok = False
        cap_ok_out[b] = cap_ok
        fan_ok = True
        for i in range(L):
            px = 1
            py = 1
            for d in range(D):
                px *= SX[b, i, d]
                py *= SY[b, i, d]
            if px > fanout[i, 0] or py > fanout[i, 1]:
                fan_ok = False
        fanout_ok_out[b] = fan_ok
        ok = True
        if placed_inside:  # BatchModel.placement_ok
            for t in range(nT):
                for i in range(backing[t]):
                    for d in range(D):
                        if relevant[t, d] and T[b, i, d] > 1:
                            ok = False
        placement_ok_out[b] = ok
