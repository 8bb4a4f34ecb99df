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
            over = 0
            if cap[i] >= 0:
                if has_bits:
                    over = max(used - cap[i] * datawidth[i], 0)
                    over = -(-over // datawidth[i])
                else:
                    over = max(used - cap[i], 0)
            overflow[b, i] = over
            if over != 0:
                cap_ok = False
        fan_ok = True
        for i in range(L):
            px = 1
            py = 1
            for d in range(D):
                px *= SX[b, i, d]
                py *= SY[b, i, d]
            if px > fanout[i, 0] or py > fanout[i, 1]:
                fan_ok = False
        ok = (cap_ok or not check_capacity) and fan_ok
        if placed_inside:  # BatchModel.placement_ok
            for t in range(nT):
                for i in range(backing[t]):
                    for d in range(D):
                        if relevant[t, d] and T[b, i, d] > 1:
                            ok = False
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
