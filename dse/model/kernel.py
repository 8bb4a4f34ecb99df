"""Which implementation evaluates the batch model's rows: the compiled per-mapping kernel
(dse/model/kernel_numba.py, numba) or the numpy passes (dse/model/batch.py, the reference).

`DSE_KERNEL=numpy` selects the numpy passes, `DSE_KERNEL=numba` the kernel; unset, the kernel
is used when numba can be imported and the numpy passes otherwise (numba is a core dependency,
but a missing one is not an error). Both give identical numbers (tests/test_kernel.py). numba
is imported here only when a batch model is first built, so `dse --version` stays fast.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from dse.errors import SpecError, did_you_mean

KERNELS = ("numba", "numpy")
ENV = "DSE_KERNEL"


def numba_available() -> bool:
    try:
        import dse.model.kernel_numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_choice(requested: str | None = None) -> str:
    """'numba' or 'numpy': `requested`, else $DSE_KERNEL, else numba when importable. Asking
    for numba explicitly when it is not installed falls back to numpy too (the numbers are
    the same)."""
    name = requested if requested is not None else os.environ.get(ENV, "").strip().lower()
    if name and name not in KERNELS:
        raise SpecError(f"unknown model kernel '{name}'", key_path=ENV,
                        expected=" or ".join(KERNELS), hint=did_you_mean(name, KERNELS))
    if name == "numpy":
        return "numpy"
    return "numba" if numba_available() else "numpy"


def kernel_for_one_mapping() -> str:
    """The kernel for evaluating a single mapping (dse.model.evaluate): $DSE_KERNEL when set;
    otherwise numba only when it is already loaded in this process (the mapper loaded it), as
    importing and loading it (~0.5 s) costs far more than one numpy evaluation (~1 ms)."""
    if os.environ.get(ENV, "").strip():
        return kernel_choice()
    return "numba" if "dse.model.kernel_numba" in sys.modules else "numpy"


class KernelConstants:
    """The arrays of one BatchModel that the kernel reads, in the kernel's layout."""

    def __init__(self, model) -> None:
        nT = len(model.tensors)
        R = max(a.shape[0] for a in model.A)
        self.A = np.zeros((nT, R, model.D), dtype=np.int64)  # ranks padded with zero rows
        for t, a in enumerate(model.A):
            self.A[t, : a.shape[0]] = a
        self.n_ranks = np.array([a.shape[0] for a in model.A], dtype=np.int64)
        # per (tensor, rank): its non-zero dims and coefficients, in dimension order
        self.nz_count = (self.A != 0).sum(axis=2).astype(np.int64)
        self.nz_dim = np.zeros((nT, R, model.D), dtype=np.int64)
        self.nz_coef = np.zeros((nT, R, model.D), dtype=np.int64)
        for t in range(nT):
            for r in range(R):
                dims = np.nonzero(self.A[t, r])[0]
                self.nz_dim[t, r, : len(dims)] = dims
                self.nz_coef[t, r, : len(dims)] = self.A[t, r, dims]
        self.shared_dim = np.array(model.shared_dim, dtype=np.bool_)
        self.relevant = ~np.array(model.irrelevant, dtype=np.bool_).reshape(nT, model.D)
        self.linked = np.array(model.linked, dtype=np.bool_)
        # link transfers: sliding-window dim pairs, and multicast._simple_hits' hash codes
        self.pairs = np.zeros((nT, model.D, model.D), dtype=np.bool_)
        self.hash_w = np.zeros((nT, R), dtype=np.int64)
        self.colw = np.zeros((nT, model.D), dtype=np.int64)
        for t, a in enumerate(model.A):
            for x, y in model.coupled_pairs[t]:
                self.pairs[t, x, y] = True
            w = model._hash_weights(a.shape[0])
            self.hash_w[t, : a.shape[0]] = w
            self.colw[t] = a.T @ w
        self.declared = model.link_mode == "declared"
        self.args = (
            self.A, self.n_ranks, self.nz_dim, self.nz_coef, self.nz_count, self.shared_dim,
            self.relevant, self.pairs, self.hash_w, self.colw, self.linked, self.declared,
            np.ascontiguousarray(model.dummy, dtype=np.bool_), model.placed_inside,
            np.ascontiguousarray(model.above_backing), np.ascontiguousarray(model.at_backing),
            model.backing.astype(np.int64), model.cap.astype(np.int64), model.has_bits,
            model.bits_t.astype(np.int64), model.datawidth.astype(np.int64),
            model.fanout.astype(np.int64), np.ascontiguousarray(model.rw, dtype=np.bool_),
            model.elide_fills, model.block_t.astype(np.int64),
            np.ascontiguousarray(model.e_action, dtype=np.float64),
            model.e_leak.astype(np.float64), model.clusters.astype(np.int64),
            model.rbw.astype(np.float64), model.wbw.astype(np.float64),
            model.sbw.astype(np.float64), model.bw_scale.astype(np.float64),
            float(model.compute_pJ),
        )
        # load (or compile) the kernel now, not inside the first timed search block
        L, D = len(model.arch.levels), model.D
        empty = np.zeros((0, L, D), dtype=np.int64)
        run_kernel(self, empty, empty, empty, empty, np.zeros((0, L, nT), dtype=np.bool_),
                   every_row=False)


def run_kernel(consts: KernelConstants, T, SX, SY, perm, keep, every_row: bool,
               check_capacity: bool = True, canonical: np.ndarray | None = None,
               sparse_fields: bool = False) -> dict:
    """The compiled kernel on a batch: validity and the model per row, as arrays (per-level
    detail only with `every_row`, as detail() needs; with `sparse_fields` only the detail the
    sparse step reads: size, replication, counts, keep — the other per-level arrays are
    empty). Rows with `exact` set (a link transfer could act on them) still need the numpy
    passes. `canonical` (B, L): the level's spatial loops are in the mapper's canonical
    order (default: all are)."""
    from dse.model.kernel_numba import evaluate_rows

    B, L, D = T.shape
    nT = keep.shape[2]
    n = B if every_row else 0  # per-level detail only for detail()
    m = 0 if sparse_fields else n
    out = {
        "valid": np.empty(B, dtype=np.bool_), "capacity_ok": np.empty(B, dtype=np.bool_),
        "fanout_ok": np.empty(B, dtype=np.bool_), "overflow": np.empty((B, L), np.int64),
        "exact": np.zeros(B, dtype=np.bool_), "energy": np.empty(B),
        "cycles": np.empty(B, dtype=np.int64), "size": np.zeros((n, L, nT), np.int64),
        "partition": np.zeros((m, L, nT), np.int64), "replication": np.zeros((n, L), np.int64),
        "counts": np.zeros((n, L, nT, 3)), "energy_by_action": np.zeros((m, L, nT, 3)),
        "slowdown": np.zeros((m, L)), "level_cycles": np.zeros((m, L), np.int64),
        "leak": np.zeros((m, L)), "compute_cycles": np.zeros(m, np.int64),
        "keep": np.zeros((n, L, nT), dtype=np.bool_), "links": np.zeros((m, L, nT)),
        "peer": np.zeros((m, L, nT)),
    }
    if canonical is None:
        canonical = np.ones((B, L), dtype=np.bool_)
    as64 = [np.ascontiguousarray(x, dtype=np.int64) for x in (T, SX, SY, perm)]
    evaluate_rows(*as64, np.ascontiguousarray(keep, dtype=np.bool_),
                  np.ascontiguousarray(canonical, dtype=np.bool_), every_row,
                  check_capacity, every_row, *consts.args,
                  out["valid"], out["capacity_ok"], out["fanout_ok"], out["overflow"],
                  out["exact"], out["energy"], out["cycles"], out["size"], out["partition"],
                  out["replication"], out["counts"], out["energy_by_action"], out["slowdown"],
                  out["level_cycles"], out["leak"], out["compute_cycles"], out["keep"],
                  out["links"], out["peer"])
    return out
