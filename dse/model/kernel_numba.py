"""The batch model's per-mapping hot path, compiled with numba (imported only through
dse.model.kernel, which falls back to the numpy passes when numba is missing).

One call walks the rows of a batch; per row it does what dse.model.batch's numpy passes do on
a batch axis, in the same order and with the same float operations, so the numbers are
identical (tests/test_kernel.py): nest and tiles (BatchModel._tiles, tiling._extents),
capacity / fan-out / placement checks (BatchModel.evaluate), deltas (deltas.py's closed form,
BatchModel._evaluate_valid), multicast groups (multicast._groups, _groups_exact), parent share
and masking, partitions, accesses (buffer.py), energy, cycles and leakage (cost.py).
Link transfers (multicast._links): the closed forms (zero-translation steps on a mesh that
decodes like the mapped grid, and the screen of translations against neighbour differences)
are here; a row that needs the exact walk per spatial structure is flagged in `exact` and the
caller evaluates it with the numpy passes.

The second part of the file is the sparse step the mapper scores (SparseStep.totals:
structure_rows, counts_rows) and the sparse model's capacity check (capacity_rows).
"""

from __future__ import annotations

import numpy as np
from numba import njit

READ, FILL, UPDATE = 0, 1, 2  # dse.model.actions.ACTIONS
INT64_MAX = np.iinfo(np.int64).max


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _extent(nz_dim, nz_coef, nz_count, t, r, box, row):
    """tiling._extents: extent of rank r of tensor t over the op-space box box[row] (no
    padding). A rank's dims and coefficients are the non-zeros of its projection row, in
    dimension order. Boxes are passed as (array, row): a slice would cost a reference count."""
    ext = 1
    for j in range(nz_count[t, r]):
        ext = ext + nz_coef[t, r, j] * (box[row, nz_dim[t, r, j]] - 1)
    return ext


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, box, row):
    """tiling._tile_size: words of tensor t in the op-space box box[row]."""
    size = 1
    for r in range(n_ranks[t]):
        size = size * _extent(nz_dim, nz_coef, nz_count, t, r, box, row)
    return size


@njit(cache=True, error_model="numpy", nogil=True)
def _groups_exact(A, n_ranks, t, S, i, box, bnd, D):
    """multicast._groups_exact: distinct projected child offsets of tensor t at a fan-out.
    Child offset along dim d is k * box[bnd, d] for k < S[i, d] (X and Y loops together)."""
    n = 1
    for d in range(D):
        n *= S[i, d]
    R = n_ranks[t]
    proj = np.zeros((n, R), dtype=np.int64)
    k = np.zeros(D, dtype=np.int64)
    for j in range(n):
        for r in range(R):
            p = 0
            for d in range(D):
                p += A[t, r, d] * k[d] * box[bnd, d]
            proj[j, r] = p
        for d in range(D):  # next child (mixed radix)
            k[d] += 1
            if k[d] < S[i, d]:
                break
            k[d] = 0
    lo = np.empty(R, dtype=np.int64)
    span = np.empty(R, dtype=np.int64)
    radix_f = 1.0
    for r in range(R):
        lo[r] = proj[0, r]
        hi = proj[0, r]
        for j in range(1, n):
            lo[r] = min(lo[r], proj[j, r])
            hi = max(hi, proj[j, r])
        span[r] = hi - lo[r] + 1
        radix_f *= span[r]
    if radix_f < 4e18:  # one integer code per projection
        codes = np.empty(n, dtype=np.int64)
        for j in range(n):
            c = 0
            for r in range(R):
                c = c * span[r] + (proj[j, r] - lo[r])
            codes[j] = c
        codes.sort()
        distinct = 1
        for j in range(1, n):
            if codes[j] != codes[j - 1]:
                distinct += 1
        return distinct
    distinct = 0  # pairwise (huge coordinate ranges only)
    for j in range(n):
        seen = False
        for q in range(j):
            same = True
            for r in range(R):
                if proj[j, r] != proj[q, r]:
                    same = False
                    break
            if same:
                seen = True
                break
        if not seen:
            distinct += 1
    return distinct


@njit(cache=True, error_model="numpy", nogil=True)
def _simple_hits(K, R, vk, kind_ok, hash_w, colw, t, i, b, SX, SY, box, bnd, D):
    """multicast._simple_hits for one row: some step's non-zero translation equals a
    neighbour's offset difference on a mesh axis (compared by hash code, as there: an exact
    necessary condition; a hit sends the row to the exact walk)."""
    for axis in range(2):
        acc = np.zeros(D, dtype=np.int64)
        for d in range(D):  # innermost first (canonical order: dimension order)
            fac = SX[b, i, d] if axis == 0 else SY[b, i, d]
            if fac <= 1:
                continue
            base = box[bnd, d] if axis == 0 else box[bnd, d] * SX[b, i, d]
            dcode = 0
            for e in range(D):
                if colw[t, e] != 0:
                    diff = acc[e] + (base if e == d else 0)
                    dcode += diff * colw[t, e]
            for k in range(K):
                if not kind_ok[k]:
                    continue
                code = 0
                for r in range(R):
                    code += vk[k, r] * hash_w[t, r]
                if code != 0 and (code == dcode or code == -dcode):
                    return True
            acc[d] -= base * (fac - 1)
    return False


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def level_overflow(used, cap, has_bits, datawidth):
    """BatchModel.evaluate's words over one level's capacity (`used` in bits with per-tensor
    word widths, rounded up to words; cap < 0: unbounded)."""
    if cap < 0:
        return 0
    if has_bits:
        over = max(used - cap * datawidth, 0)
        return -(-over // datawidth)
    return max(used - cap, 0)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def fanout_fits(SX, SY, b, fanout, L, D):
    """Row b's spatial factors fit every level's X and Y fan-out."""
    for i in range(L):
        px = 1
        py = 1
        for d in range(D):
            px *= SX[b, i, d]
            py *= SY[b, i, d]
        if px > fanout[i, 0] or py > fanout[i, 1]:
            return False
    return True


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def placement_fits(T, b, backing, relevant, nT, D):
    """BatchModel.placement_ok for row b: no temporal loop above a tensor's backing level
    walks a dimension of the tensor."""
    for t in range(nT):
        for i in range(backing[t]):
            for d in range(D):
                if relevant[t, d] and T[b, i, d] > 1:
                    return False
    return True


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def bandwidth_slowdown(rd, wd, read_bw, write_bw, shared_bw):
    """cost.bandwidth_cycles' slowdown of one level from its read and write words per compute
    cycle (1 = none)."""
    slow = 1.0
    if rd > read_bw:
        slow = min(slow, read_bw / rd)
    if wd > write_bw:
        slow = min(slow, write_bw / wd)
    if rd + wd > shared_bw:
        slow = min(slow, shared_bw / (rd + wd))
    return slow


@njit(cache=True, error_model="numpy", nogil=True)
def evaluate_rows(T, SX, SY, perm, keep_in, canonical, every_row, check_capacity, detail,
                  A, n_ranks, nz_dim, nz_coef, nz_count, shared_dim, relevant, pairs, hash_w,
                  colw, linked, declared,
                  dummy, placed_inside, above_backing, at_backing, backing, cap, has_bits, bits_t,
                  datawidth, fanout, rw, elide_fills, block_t, e_action, e_leak, clusters, rbw,
                  wbw, sbw, bw_scale, compute_pJ,
                  valid, capacity_ok, fanout_ok, overflow, exact, energy, cycles,
                  size_out, partition_out, replication, counts, energy_by_action, slowdown,
                  level_cycles, leak, compute_cycles, keep_out, links_out, peer_out):
    """Per row: validity (every_row=False: rows that fail it are left at energy inf) and the
    whole model. Outputs are written in place; `exact[b]` marks rows left to the numpy path.
    The per-level and per-action arrays (size_out ... keep_out) are written only when
    `detail` is set (they may be empty otherwise); with `detail` and an empty
    `partition_out`, only size_out, replication, counts and keep_out are."""
    B, L, D = T.shape
    nT = keep_in.shape[2]
    Rmax = A.shape[1]
    box = np.ones((L + 1, D), dtype=np.int64)
    S = np.empty((L, D), dtype=np.int64)
    size = np.empty((L, nT), dtype=np.int64)
    keep = np.empty((L, nT), dtype=np.bool_)
    fan = np.empty(L, dtype=np.int64)
    # the temporal loops (non-unit) of every level, outermost first; the loops above boundary
    # i + 1 are the first `end[i]`, and loop k of that boundary (innermost first) is
    # f = end[i] - 1 - k. Per loop: dim, bound, op-space stride, W = (n - 1) * (product of
    # the bounds of the loops outside it), and per (tensor, rank) the projected stride.
    loop_dim = np.empty(L * D, dtype=np.int64)
    loop_n = np.empty(L * D, dtype=np.int64)
    loop_s = np.empty(L * D, dtype=np.int64)
    loop_w = np.empty(L * D, dtype=np.int64)
    loop_pv = np.zeros((L * D, nT, Rmax), dtype=np.int64)
    end = np.empty(L, dtype=np.int64)
    ext = np.empty(Rmax, dtype=np.int64)
    cum = np.empty(Rmax, dtype=np.int64)
    v0 = np.empty(Rmax, dtype=np.int64)
    delta = np.empty((L, nT))
    groups = np.empty((L, nT))
    total = np.empty((L, nT))
    weighted = np.empty((L, nT))
    content = np.empty((L, nT))
    share = np.empty((L, nT))
    partition = np.empty((L, nT), dtype=np.int64)
    sbox = np.empty((1, D), dtype=np.int64)
    rep = np.empty(L, dtype=np.int64)
    kind_ok = np.empty(L * D, dtype=np.bool_)
    ck = np.empty(L * D, dtype=np.int64)
    vk = np.empty((L * D, Rmax), dtype=np.int64)
    zero_words = np.empty((L, nT))
    zero_linked = np.empty((L, nT))
    links = np.empty((L, nT))
    peer = np.empty((L, nT))
    counts_row = np.empty((L, nT, 3))  # counts of this row: reads, fills, updates per instance
    energy_row = np.empty((L, nT, 3))  # energy per action
    slow_l = np.empty(L)
    lcyc_l = np.empty(L, dtype=np.int64)
    leak_l = np.empty(L)
    for b in range(B):
        # ---- nest and tiles (BatchModel._tiles)
        for i in range(L):
            for t in range(nT):
                k = keep_in[b, i, t] and not dummy[i]
                if placed_inside:
                    k = (k and not above_backing[i, t]) or at_backing[i, t]
                keep[i, t] = k
            for d in range(D):
                S[i, d] = SX[b, i, d] * SY[b, i, d]
        for i in range(L - 1, -1, -1):
            for d in range(D):
                box[i, d] = box[i + 1, d] * (T[b, i, d] * S[i, d])
        for i in range(L):
            for t in range(nT):
                size[i, t] = _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, box, i)
        # ---- validity (BatchModel.evaluate): capacity, fan-out, placement
        cap_ok = True
        for i in range(L):
            used = 0
            for t in range(nT):
                if keep[i, t]:
                    used += size[i, t] * bits_t[i, t] if has_bits else size[i, t]
            over = level_overflow(used, cap[i], has_bits, datawidth[i])
            overflow[b, i] = over
            if over != 0:
                cap_ok = False
        fan_ok = fanout_fits(SX, SY, b, fanout, L, D)
        ok = (cap_ok or not check_capacity) and fan_ok
        if placed_inside and ok:
            ok = placement_fits(T, b, backing, relevant, nT, D)
        capacity_ok[b] = cap_ok or not check_capacity
        fanout_ok[b] = fan_ok
        valid[b] = ok
        exact[b] = False
        if not ok and not every_row:
            energy[b] = np.inf
            cycles[b] = INT64_MAX
            continue
        # ---- the nest's temporal loops (BatchModel._evaluate_valid's slots)
        nf = 0
        outer = 1
        for i in range(L):
            f = 1
            for d in range(D):
                f *= S[i, d]
            fan[i] = f
            for j in range(D - 1, -1, -1):  # the level's order is innermost first
                d = perm[b, i, j]
                if T[b, i, d] > 1:
                    loop_dim[nf] = d
                    loop_n[nf] = T[b, i, d]
                    loop_s[nf] = box[i + 1, d] * S[i, d]  # spatial box of level i
                    loop_w[nf] = (T[b, i, d] - 1) * outer  # W_k = (n_k - 1) prod_{j>k} n_j
                    outer *= T[b, i, d]
                    for t in range(nT):  # tiling._translations: projected strides
                        for r in range(n_ranks[t]):
                            loop_pv[nf, t, r] = A[t, r, d] * loop_s[nf]
                    nf += 1
            end[i] = nf
        # ---- deltas and multicast groups per boundary (deltas.py closed form)
        flagged = False
        zero_words[:] = 0.0
        zero_linked[:] = 0.0
        for i in range(L):
            bnd = i + 1
            K = end[i]  # loops above boundary bnd; loop k (innermost first) is K - 1 - k
            for t in range(nT):
                needed = keep[i, t] or (keep[bnd, t] if bnd < L else True)
                links_possible = fan[i] > 1 and linked[i] and K > 0
                # multicast groups (multicast._groups)
                g = 1.0
                if fan[i] > 1:
                    tricky = False
                    any_spatial = False
                    for d in range(D):
                        if S[i, d] > 1:
                            any_spatial = True
                    for r in range(n_ranks[t]):
                        n_sp = 0
                        for j in range(nz_count[t, r]):
                            d = nz_dim[t, r, j]
                            if S[i, d] > 1:
                                n_sp += 1
                                g *= S[i, d]
                        if n_sp > 1:
                            tricky = True
                    if shared_dim[t] and any_spatial:
                        tricky = True
                    if tricky:
                        g = float(_groups_exact(A, n_ranks, t, S, i, box, bnd, D))
                groups[i, t] = g
                if not (needed or links_possible):
                    delta[i, t] = 1.0  # only the ratio groups / fan-out is used
                    continue
                link_rows = keep[bnd, t] if declared else True
                # multicast._links' `matters`: a link transfer could act on this row
                matters = links_possible and link_rows and (needed or g < fan[i])
                full = 1
                for r in range(n_ranks[t]):
                    ext[r] = _extent(nz_dim, nz_coef, nz_count, t, r, box, bnd)
                    full *= ext[r]
                R = n_ranks[t]
                if K == 0:
                    delta[i, t] = full
                elif bnd == L:  # the compute units: every step moves a whole tile
                    wsum = 0
                    for k in range(K):
                        wsum += loop_w[K - 1 - k]
                        kind_ok[k] = True
                    delta[i, t] = full * (1 + wsum)
                    if matters:  # translations, for link transfers (tiling._translations)
                        for r in range(R):
                            cum[r] = 0
                        for k in range(K):
                            for r in range(R):
                                pv = loop_pv[K - 1 - k, t, r]
                                vk[k, r] = pv - cum[r]
                                cum[r] += pv
                else:
                    # deltas.boundary_deltas: fills = F + sum_k W_k c_k; c_1 = D(Delta_1),
                    # c_k = D(Delta_k) if Delta_k == Delta_1 else F
                    for r in range(R):
                        cum[r] = 0
                    acc = 0
                    for k in range(K):
                        f = K - 1 - k
                        cnt = 0
                        vsum = 0
                        er = 0
                        differs = False
                        for r in range(R):
                            pv = loop_pv[f, t, r]
                            v = pv - cum[r]  # Delta_k = stride_k - sum_{j<k} stride_j
                            cum[r] += pv
                            vk[k, r] = v
                            if k == 0:
                                v0[r] = v
                            elif v != v0[r]:
                                differs = True
                            if v != 0:
                                cnt += 1
                                er += ext[r]
                            vsum += v
                        vr = abs(vsum)
                        if cnt == 0:
                            c = 0
                        elif cnt == 1 and vr < er:
                            c = vr * (full // max(er, 1))  # the uncovered slab
                        else:
                            c = full
                        if k > 0 and differs:
                            c = full
                        ck[k] = c
                        acc += loop_w[f] * c
                    delta[i, t] = full + acc
                    if matters:  # a link needs the previous step's delta of the same kind
                        kfirst = 0 if ck[0] == 0 else (2 if ck[0] == full else 1)
                        any_later = False
                        for k in range(1, K):
                            kd = 0 if ck[k] == 0 else (2 if ck[k] == full else 1)
                            kind_ok[k] = kd == kfirst and kd > 0
                            any_later = any_later or kind_ok[k]
                        kind_ok[0] = kfirst > 0 and (kfirst == 2 or any_later)
                if not matters:
                    continue
                # ---- link transfers (multicast._links): closed forms, else the numpy passes
                zw = 0  # words per child over zero-translation steps
                for k in range(K):
                    zero = kind_ok[k]
                    for r in range(R):
                        if vk[k, r] != 0:
                            zero = False
                    if zero:
                        zw += loop_w[K - 1 - k]
                zw = zw * full
                coupled = bnd == L
                if not coupled:  # a sliding-window pair: spatial x here, y walked in time
                    for x in range(D):
                        if S[i, x] > 1:
                            for y in range(D):
                                if pairs[t, x, y]:
                                    for lv in range(i + 1):
                                        if T[b, lv, y] > 1:
                                            coupled = True
                xm = 1
                ym = 1
                for d in range(D):
                    xm *= SX[b, i, d]
                    ym *= SY[b, i, d]
                spatial_sum = False
                for r in range(R):
                    n_sp = 0
                    for j in range(nz_count[t, r]):
                        if S[i, nz_dim[t, r, j]] > 1:
                            n_sp += 1
                    if n_sp > 1:
                        spatial_sum = True
                simple = (ym == 1 or xm == fanout[i, 0]) and not spatial_sum and canonical[b, i]
                if not simple:
                    if zw > 0 or coupled:  # the exact walk per spatial structure
                        flagged = True
                        break
                    continue
                if coupled and _simple_hits(K, R, vk, kind_ok, hash_w, colw, t, i, b, SX, SY,
                                            box, bnd, D):
                    flagged = True  # a translation a neighbour's offset matches
                    break
                all_linked = False
                for d in range(D):
                    if SX[b, i, d] > 1:
                        all_linked = not relevant[t, d]
                        break
                if not all_linked:
                    for d in range(D):
                        if SY[b, i, d] > 1:
                            all_linked = not relevant[t, d]
                            break
                if zw > 0 and all_linked:
                    # every child has a same-data neighbour: zero-translation steps come
                    # from it (multicast groups and children among the rest: none)
                    zero_words[i, t] = zw
                    zero_linked[i, t] = fan[i]
            if flagged:
                break
        if flagged:
            exact[b] = True
            continue
        # ---- parent share and masking (buffer.parent_share_and_mask)
        for i in range(L):
            for t in range(nT):
                zwf = zero_words[i, t]
                total[i, t] = (delta[i, t] - zwf) * groups[i, t] + zwf * 0.0
                weighted[i, t] = (delta[i, t] - zwf) * float(fan[i]) + zwf * 0.0
                links[i, t] = zwf * zero_linked[i, t]
                content[i, t] = total[i, t]
                share[i, t] = 0.0 if i == 0 else weighted[i - 1, t] / float(fan[i - 1])
        for i in range(L - 1, 0, -1):
            for t in range(nT):
                if not keep[i, t]:
                    factor = content[i, t] * float(fan[i - 1]) / weighted[i - 1, t]
                    scaled = total[i - 1, t] * factor
                    content[i - 1, t] = scaled
                    total[i - 1, t] = scaled
                    weighted[i - 1, t] = weighted[i - 1, t] * factor
                    links[i - 1, t] = 0.0
        if placed_inside:  # nothing comes from above a backing level
            for i in range(L):
                for t in range(nT):
                    if at_backing[i, t]:
                        share[i, t] = 0.0
                    if i + 1 < L and at_backing[i + 1, t]:
                        links[i, t] = 0.0
        # ---- partitions (buffer.partition_sizes) and replication
        for t in range(nT):
            partition[0, t] = size[0, t]
        for i in range(1, L):
            for d in range(D):
                sbox[0, d] = box[i, d] * S[i - 1, d]
            for t in range(nT):
                spread = _tile_size(nz_dim, nz_coef, nz_count, n_ranks, t, sbox, 0)
                partition[i, t] = partition[i - 1, t] * size[i, t] // spread
        rep[0] = 1
        for i in range(1, L):
            rep[i] = rep[i - 1] * fan[i - 1]
        for t in range(nT):  # peer accesses per instance (link transfers)
            peer[0, t] = 0.0
            for i in range(1, L):
                peer[i, t] = np.floor(np.floor(links[i - 1, t]) / rep[i])
        # ---- reads, fills, updates (buffer.accesses); no peer accesses without links
        for t in range(nT):
            first_keeper = 0
            for i in range(L):
                if keep[i, t]:
                    first_keeper = i
                    break
            for i in range(L):
                if not keep[i, t]:
                    counts_row[i, t, READ] = 0.0
                    counts_row[i, t, FILL] = 0.0
                    counts_row[i, t, UPDATE] = 0.0
                    continue
                content_peer = content[i, t] + peer[i, t]
                share_peer = share[i, t] + peer[i, t]
                if rw[t]:
                    counts_row[i, t, UPDATE] = np.rint(content[i, t])
                    counts_row[i, t, READ] = np.rint(content_peer - partition[i, t])
                    if i == first_keeper or not elide_fills:
                        counts_row[i, t, FILL] = np.rint(share_peer)
                    else:
                        counts_row[i, t, FILL] = np.rint(share_peer - partition[i, t])
                else:
                    counts_row[i, t, UPDATE] = 0.0
                    counts_row[i, t, READ] = np.rint(content_peer)
                    counts_row[i, t, FILL] = np.floor(share_peer)
        # ---- energy per action (cost.access_energy), summed in a fixed order
        level_sum = 0.0
        cc = 1
        for i in range(L):
            for d in range(D):
                cc *= T[b, i, d]
        for i in range(L):
            charged = min(rep[i], clusters[i])
            lsum = 0.0
            for t in range(nT):
                for a in range(3):
                    if keep[i, t]:
                        blocks = np.ceil(counts_row[i, t, a] / block_t[i, t])
                        e = blocks * e_action[i, a] * charged
                    else:
                        e = 0.0 * charged
                    energy_row[i, t, a] = e
                    lsum = e if (t == 0 and a == 0) else lsum + e
            level_sum = lsum if i == 0 else level_sum + lsum
        # ---- bandwidth-limited cycles (cost.bandwidth_cycles)
        worst = 0
        for i in range(L):
            rsum = 0.0
            wsum_f = 0.0
            for t in range(nT):
                rd_t = counts_row[i, t, READ]
                wr_t = counts_row[i, t, FILL] + counts_row[i, t, UPDATE]
                if has_bits:
                    rd_t = rd_t * bw_scale[i, t]
                    wr_t = wr_t * bw_scale[i, t]
                rsum = rd_t if t == 0 else rsum + rd_t
                wsum_f = wr_t if t == 0 else wsum_f + wr_t
            slow = bandwidth_slowdown(rsum / cc, wsum_f / cc, rbw[i], wbw[i], sbw[i])
            slow_l[i] = slow
            lc = np.int64(np.ceil(cc / slow))
            lcyc_l[i] = lc
            worst = lc if i == 0 else max(worst, lc)
        cyc = max(cc, worst)
        # ---- leakage (cost.leakage) and the total
        leak_sum = 0.0
        for i in range(L):
            any_kept = False
            for t in range(nT):
                if keep[i, t]:
                    any_kept = True
            lk = e_leak[i] * float(cyc) * float(rep[i]) if any_kept else 0.0
            leak_l[i] = lk
            leak_sum = lk if i == 0 else leak_sum + lk
        energy[b] = level_sum + leak_sum + compute_pJ
        cycles[b] = cyc
        if not detail:
            continue
        # the sparse step's fields (size, replication, counts, keep) always; the others
        # only when they have rows (run_kernel's `sparse_fields`)
        full = partition_out.shape[0] > 0
        if full:
            compute_cycles[b] = cc
        for i in range(L):
            replication[b, i] = rep[i]
            if full:
                slowdown[b, i] = slow_l[i]
                level_cycles[b, i] = lcyc_l[i]
                leak[b, i] = leak_l[i]
            for t in range(nT):
                keep_out[b, i, t] = keep[i, t]
                size_out[b, i, t] = size[i, t] if keep[i, t] else 0
                for a in range(3):
                    counts[b, i, t, a] = counts_row[i, t, a]
                if full:
                    partition_out[b, i, t] = partition[i, t] if keep[i, t] else 0
                    links_out[b, i, t] = links[i, t]
                    peer_out[b, i, t] = peer[i, t]
                    for a in range(3):
                        energy_by_action[b, i, t, a] = energy_row[i, t, a]


# ================================================================== the sparse step
# dse.model.sparse_batch.SparseStep.apply, compiled for the mapper: per row only what it scores
# (energy, cycles, utilization, and whether the levels that decompress or compress support
# it). Two compiled passes with the density models in between, in numpy (SparseStep.totals):
# 1. `structure_rows`: the loop nest's part (SparseStep._optimizations' holders and condition
#    boxes, _shapes' rank fibers): per row the tile sizes whose emptiness decides each gating
#    or skipping, and each format's rank shapes.
# 2. numpy: P(empty) of those tiles, formats' expected units per rank, vector-access
#    corrections.
# 3. `counts_rows`: actual / gated / skipped counts, metadata traffic, codecs, compute
#    classes, energy per action, bandwidth-limited cycles and leakage, in apply's order and
#    with its float operations, so the numbers are identical (tests/test_sparse_kernel.py).
# `capacity_rows` is SparseBatchModel's capacity / fan-out / placement check.
# They live in this file with the dense kernel they inline (_tile_size, bandwidth_slowdown):
# numba's on-disk cache is keyed on the defining file only, so a cached function inlining a
# compiled function of another file would keep its old code after that file changed
# (tests/test_sparse_kernel_edges.py).
SPARSE_EPS = 1e-9  # dse.model.sparse_batch.EPS


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _floor(x):
    return np.floor(x + SPARSE_EPS)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _ceil(x):
    return np.ceil(x - SPARSE_EPS)


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
            over = level_overflow(used, cap[i], has_bits, datawidth[i])
            overflow[b, i] = over
            if over != 0:
                cap_ok = False
        cap_ok_out[b] = cap_ok
        fan_ok = fanout_fits(SX, SY, b, fanout, L, D)
        fanout_ok_out[b] = fan_ok
        placement_ok_out[b] = placement_fits(T, b, backing, relevant, nT, D) \
            if placed_inside else True
