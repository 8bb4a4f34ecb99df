"""Multicast and link-transfer passes of the model (Timeloop's spatial delta analysis).

Methods of BatchModel (as a base class: they use its projections, fan-outs, link mode and
structure cache). Multicast: how many distinct child tiles a fan-out has (one parent read per
group). Link transfers: children that take their delta from a mesh neighbour; closed forms
where the hardware mesh decodes like the mapped grid, an exact walk per spatial structure
(cached) elsewhere.
"""

from __future__ import annotations

import numpy as np

from dse.model.deltas import link_effect, neighbour_diffs


class MulticastPasses:
    """Multicast groups and link transfers at each fan-out."""

    def _simple_hits(self, t, v, kind_ok, nonunit, SX, SY, child_box) -> np.ndarray:
        """Rows (mapped grid == hardware layout) where some step's non-zero translation equals
        a neighbour's offset difference: the innermost loop's step on an axis, or a carry into
        an outer loop of that axis. Exact necessary condition; hits go to the exact path."""
        A = self.A[t]
        B, D = SX.shape
        w = self._hash_weights(A.shape[0])
        colw = A.T @ w  # code of a unit step along each dimension
        codes = v @ w  # (B, K)
        live = kind_ok & nonunit & (codes != 0)
        hit = np.zeros(B, dtype=bool)
        for fac, base in ((SX, child_box), (SY, child_box * SX)):
            acc = np.zeros((B, D), dtype=np.int64)
            for d in range(D):  # innermost first (canonical order: dimension order)
                has = fac[:, d] > 1
                if not has.any():
                    continue
                step = np.zeros((B, D), dtype=np.int64)
                step[:, d] = base[:, d]
                diff = acc + step
                dcode = sum(diff[:, e] * colw[e] for e in range(D) if colw[e])
                dcode = np.where(has, dcode, 0)[:, None]
                hit |= (has[:, None] & live & ((codes == dcode) | (codes == -dcode))).any(axis=1)
                acc = np.where(has[:, None], acc - step * (fac[:, d:d + 1] - 1), acc)
        return hit

    def _spatial_sum(self, t: int, S: np.ndarray) -> np.ndarray:
        """Rows where some rank of tensor t sums two dimensions that are both spatial here."""
        out = np.zeros(S.shape[0], dtype=bool)
        for row in self.A[t]:
            dims = np.nonzero(row)[0]
            if len(dims) > 1:
                out |= (S[:, dims] > 1).sum(axis=1) > 1
        return out

    def _coupled(self, t: int, level: int, to_compute: bool, S: np.ndarray, T: np.ndarray
                 ) -> np.ndarray:
        """Rows where a link transfer is conceivable at this fan-out (see module docstring)."""
        B = S.shape[0]
        if to_compute:
            return np.ones(B, dtype=bool)
        out = np.zeros(B, dtype=bool)
        temporal_above = (T[:, : level + 1] > 1).any(axis=1)  # (B, D)
        for x, y in self.coupled_pairs[t]:
            out |= (S[:, level, x] > 1) & temporal_above[:, y]
        return out

    # ------------------------------------------------------------------ multicast groups
    def _groups(self, t: int, S: np.ndarray, child_box: np.ndarray, SX: np.ndarray,
                SY: np.ndarray) -> np.ndarray:
        """Number of distinct projected child offsets of tensor t at a fan-out (B,)."""
        A = self.A[t]
        B = S.shape[0]
        g = np.ones(B, dtype=np.float64)
        tricky = np.zeros(B, dtype=bool)
        spatial = S > 1
        for row in A:
            dims = np.nonzero(row)[0]
            n_sp = np.zeros(B, dtype=np.int64)
            for d in dims:
                n_sp += spatial[:, d]
                g *= np.where(spatial[:, d], S[:, d], 1)
            tricky |= n_sp > 1  # a rank summing two spatial dims (e.g. P + R): count exactly
        if self.shared_dim[t]:
            tricky |= spatial.any(axis=1)
        for b in np.nonzero(tricky)[0]:
            g[b] = self._groups_exact(t, SX[b], SY[b], child_box[b])
        return g

    def _groups_exact(self, t: int, SX: np.ndarray, SY: np.ndarray, child_box: np.ndarray
                      ) -> int:
        offs = self._child_offsets_linear(SX, SY, child_box)
        proj = offs @ self.A[t].T
        return len({tuple(p) for p in proj})

    # ------------------------------------------------------------------ link transfers
    def _struct(self, t: int, level: int, SX: np.ndarray, SY: np.ndarray, child_box: np.ndarray,
                order: np.ndarray | None):
        """Per spatial structure (cached): child projections, per-child neighbour differences
        on the hardware mesh, multicast groups, and the codes of all non-zero differences."""
        if order is not None:
            order = np.ascontiguousarray(order, dtype=np.int64)
        key = (t, level, SX.tobytes(), SY.tobytes(), child_box.tobytes(),
               b"" if order is None else order.tobytes())
        st = self._structs.get(key)
        if st is None:
            offs = self._child_offsets_linear(SX, SY, child_box, order)
            proj = [tuple(int(x) for x in row) for row in offs @ self.A[t].T]
            h, vv = (int(x) for x in self.fanout[level])
            diffs = neighbour_diffs(proj, h, vv)
            nonzero = {d for ds in diffs for d in ds if any(d)}
            w = self._hash_weights(self.A[t].shape[0])
            codes = np.array(sorted({int(np.dot(d, w)) for d in nonzero}), dtype=np.int64)
            st = {"proj": proj, "diffs": diffs, "groups": len(set(proj)), "fanout": len(proj),
                  "codes": codes, "effects": {}, "by_code": {}}
            self._structs[key] = st
        return st

    def _effect(self, st: dict, tr: tuple) -> tuple[int, int, int]:
        e = st["effects"].get(tr)
        if e is None:
            e = st["effects"][tr] = link_effect(st["proj"], st["diffs"], tr)
        return e

    def _links(self, t, i, to_compute, v, kind_ok, nonunit, weight, outer_excl, sn, first, full,
               c, kind, needed, link_rows, groups, fan, S, T, SX, SY, child_box, zero_words,
               zero_links, patches, order, canonical):
        """Link transfers at level i's fan-out for tensor t: zero-translation steps (a stride
        change moves a whole tile that a neighbour already holds) in closed form per spatial
        structure; rows where a non-zero translation matches a neighbour difference get the
        exact per-row event walk."""
        rows_fan = fan[:, i] > 1
        # links change nothing where neither this level nor its child keeps t and every child
        # holds different data (the reads/fan-out ratio that masking passes upwards stays 1)
        matters = rows_fan & link_rows & (needed | (groups[:, i, t] < fan[:, i]))
        if not matters.any():
            return
        zero = (v == 0).all(axis=2) & kind_ok
        zw = (weight * zero).sum(axis=1) * full  # words per child over zero-translation steps
        coupled = self._coupled(t, i, to_compute, S, T)
        # Closed form for zero translations where child ids decode on the hardware mesh as on
        # the mapped grid (one mapped row, or mapped X == hardware X) and no rank sums two
        # spatial dims: every child has a same-data neighbour iff the innermost X (or Y) loop
        # is over a dimension the tensor does not use; otherwise none has.
        hx, hy = SX[:, i] > 1, SY[:, i] > 1
        xm, ym = SX[:, i].prod(axis=1), SY[:, i].prod(axis=1)
        simple = (((ym == 1) | (xm == self.fanout[i, 0])) & ~self._spatial_sum(t, S[:, i])
                  & canonical)
        irr = self.irrelevant[t]
        all_linked = ((hx.any(axis=1) & irr[np.argmax(hx, axis=1)])
                      | (hy.any(axis=1) & irr[np.argmax(hy, axis=1)]))
        closed = matters & simple & (zw > 0) & all_linked
        if closed.any():
            zero_words[closed, i, t] = zw[closed]
            zero_links[closed, i, t, 0] = 0.0  # multicast groups among the rest
            zero_links[closed, i, t, 1] = 0.0  # children in the rest
            zero_links[closed, i, t, 2] = fan[closed, i]  # linked children
        cand = matters & coupled
        if cand.any():  # for simple layouts, screen translations against neighbour differences
            sel = np.nonzero(cand & simple)[0]
            if len(sel):
                cand[sel] = self._simple_hits(t, v[sel], kind_ok[sel], nonunit[sel],
                                              SX[sel, i], SY[sel, i], child_box[sel])
        rows = np.nonzero(matters & (((zw > 0) & ~simple) | cand))[0]
        coupled = cand
        if not len(rows):
            return
        parts = [SX[rows, i], SY[rows, i], np.where(S[rows, i] > 1, child_box[rows], 0)]
        if order is not None:  # rows in the mapper's canonical order need no order column
            parts.append(order[rows])
        keyrows = np.concatenate(parts, axis=1)
        uniq, first_of, inv = np.unique(keyrows, axis=0, return_index=True,
                                        return_inverse=True)
        inv = inv.reshape(-1)
        R = v.shape[2]
        w = self._hash_weights(R)
        mult = np.int64(-7046029254386353131)  # odd 64-bit constant: mixes structure ids in
        structs, zero_eff, allowed_u, allowed_c = [], [], [], []
        for u in range(len(uniq)):
            r0 = rows[first_of[u]]
            st = self._struct(t, i, SX[r0, i], SY[r0, i], child_box[r0],
                              None if order is None else order[r0])
            structs.append(st)
            n_linked, groups_with, n_rest = self._effect(st, (0,) * R)
            useful = n_linked > 0 and groups_with < st["groups"]
            zero_eff.append((useful, groups_with, n_rest, n_linked))
            if len(st["codes"]):
                allowed_u.append(np.full(len(st["codes"]), u, dtype=np.int64))
                allowed_c.append(st["codes"])
        zero_eff = np.array(zero_eff, dtype=np.float64)  # (U, 4)
        z = zero_eff[inv]
        ok = (z[:, 0] > 0) & ~simple[rows]  # simple rows were done in closed form
        if ok.any():
            zero_words[rows[ok], i, t] = zw[rows[ok]]
            zero_links[rows[ok], i, t] = z[ok, 1:]
        cmask = coupled[rows]
        if allowed_u and cmask.any():
            crow, cu = rows[cmask], inv[cmask]
            vc = v[crow]
            codes = vc @ w  # (n, K)
            base = (cu.astype(np.int64) * mult)[:, None]
            allowed_keys = np.concatenate(allowed_u) * mult + np.concatenate(allowed_c)
            hit = np.isin(base + codes, allowed_keys) | np.isin(base - codes, allowed_keys)
            hit &= kind_ok[crow] & nonunit[crow] & (vc != 0).any(axis=2)
            sel = hit.any(axis=1)
            if sel.any():
                self._link_events(structs, cu[sel], crow[sel], i, t, to_compute, v, sn,
                                  outer_excl, first, full, c, kind, patches)

    def _link_events(self, structs, su, hr, i, t, to_compute, v, sn, outer_excl, first, full,
                     c, kind, patches) -> None:
        """Exact multicast + link statistics for rows where a non-zero translation may be
        forwarded by a neighbour: the sampled step classes of the closed form in
        dse/model/deltas.py, each class's link effect looked up per (spatial structure,
        translation). Delta kinds: 0 empty, 1 partial, 2 whole tile."""
        V = v[hr]  # (n, K, R)
        n, K, R = V.shape
        uniq, inv = group_translations(np.repeat(su, K), V.reshape(-1, R))
        eff = np.empty((len(uniq), 3), dtype=np.float64)
        for j, row in enumerate(uniq.tolist()):
            st, tr = structs[row[0]], tuple(row[1:])
            e = st["by_code"].get(tr)
            if e is None:
                e = st["by_code"][tr] = self._effect(st, tr)
            eff[j] = e
        eff = eff[inv].reshape(n, K, 3)
        n_linked, groups_with, n_rest = eff[..., 0], eff[..., 1], eff[..., 2]
        groups = np.array([structs[u]["groups"] for u in su], dtype=np.float64)[:, None]
        fanout = np.array([structs[u]["fanout"] for u in su], dtype=np.float64)[:, None]
        bounds = sn[hr]
        nonunit = bounds > 1
        first_slot = first[hr]
        row_ix = np.arange(n)
        fullr = full[hr].astype(np.float64)[:, None]
        if to_compute:
            size = np.broadcast_to(fullr, (n, K))
            delta_kind = np.full((n, K), 2)
        else:
            size = c[hr].astype(np.float64)
            delta_kind = kind[hr]
        first_kind = delta_kind[row_ix, first_slot][:, None]
        first_size = size[row_ix, first_slot][:, None]
        same_tr = (V == V[row_ix, first_slot][:, None, :]).all(axis=2)
        later = (np.arange(K)[None, :] > first_slot[:, None]) & nonunit
        useful = (n_linked > 0) & (groups_with < groups)
        n_linked_first, groups_with_first, n_rest_first = (
            x[row_ix, first_slot][:, None] for x in (n_linked, groups_with, n_rest))
        useful_first = useful[row_ix, first_slot][:, None]
        outer = outer_excl[hr].astype(np.float64)
        loop1_steps = (bounds[row_ix, first_slot] - 1).astype(np.float64)[:, None]

        def contrib(weight, sz, link, g_with, n_rest, n_linked):
            link = link & (weight > 0) & (sz > 0)
            tot = np.where(link, weight * sz * g_with, weight * sz * groups)
            wei = np.where(link, weight * sz * n_rest, weight * sz * fanout)
            lnk = np.where(link, weight * sz * n_linked, 0.0)
            return tot, wei, lnk

        total = fullr[:, 0] * groups[:, 0]
        weighted = fullr[:, 0] * fanout[:, 0]
        links = np.zeros(n)
        # loop-1 steps after step #0 (whose delta is a full tile)
        tot, wei, lnk = contrib(loop1_steps, first_size, (first_kind == 2) & useful_first,
                                groups_with_first, n_rest_first, n_linked_first)
        total += tot[:, 0]
        weighted += wei[:, 0]
        links += lnk[:, 0]
        match = (later & (delta_kind == first_kind) & (delta_kind > 0)
                 & ((delta_kind == 2) | same_tr))
        # loop-1 steps after a loop-k step
        weight_after_k = np.where(later, loop1_steps * (bounds - 1) * outer, 0.0)
        tot, wei, lnk = contrib(weight_after_k, first_size, match & useful_first,
                                groups_with_first, n_rest_first, n_linked_first)
        total += tot.sum(axis=1)
        weighted += wei.sum(axis=1)
        links += lnk.sum(axis=1)
        # loop-k steps (after a loop-1 step)
        weight_k = np.where(later, (bounds - 1) * outer, 0.0)
        tot, wei, lnk = contrib(weight_k, size, match & useful, groups_with, n_rest, n_linked)
        total += tot.sum(axis=1)
        weighted += wei.sum(axis=1)
        links += lnk.sum(axis=1)
        patches.append((hr, i, t, total, weighted, links))

    def _hash_weights(self, R: int) -> np.ndarray:
        """Weights that make equal vectors give equal sums, modulo 2**64 as numpy's int64
        arithmetic wraps (unequal ones rarely collide; codes only screen rows for the exact
        walk, which groups translations by their exact values: `group_translations`)."""
        return np.array([pow(1_000_003, k, 2**64) for k in range(R)],
                        dtype=np.uint64).view(np.int64)


def group_translations(struct_ids: np.ndarray, vectors: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (structure id, translation vector) rows, exactly (no hashing, so any number
    of ranks and any magnitude): (unique rows [id, v...], index of each input row's group)."""
    pairs = np.concatenate([np.asarray(struct_ids, dtype=np.int64)[:, None],
                            np.asarray(vectors, dtype=np.int64)], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    return uniq, inv.reshape(-1)
