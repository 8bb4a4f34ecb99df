"""Tensor placement: the level that backs each tensor (holds all of it, for the whole layer).

By default every tensor is backed by the outermost level (Timeloop's rule: the outermost level
keeps everything). A tensor backed by an inner level (an intermediate kept on chip by layer
fusion, a tensor streamed through a FIFO) is held by no level above it, takes no fills from
above (its contents are there before the layer starts and stay after it ends), and the mapping
must not walk it in time above that level (that would need a level above to hold the rest).
"""

from __future__ import annotations

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.workload.problem import Problem


def backing_levels(problem: Problem, arch: Architecture,
                   placement: dict[str, str] | None) -> tuple[int, ...]:
    """Per tensor (problem order), the index of its backing level; unknown names are errors."""
    names = [lv.name for lv in arch.levels]
    out = [0] * len(problem.data_spaces)
    tensors = problem.tensor_names
    for tensor, level in (placement or {}).items():
        if tensor not in tensors:
            raise SpecError(f"placement names tensor '{tensor}', which the problem does not have",
                            key_path=f"placement.{tensor}", expected=", ".join(tensors),
                            hint=did_you_mean(tensor, tensors))
        if level not in names:
            raise SpecError(f"placement puts {tensor} at level '{level}', which the "
                            f"architecture does not have", key_path=f"placement.{tensor}",
                            expected=", ".join(names), hint=did_you_mean(level, names))
        i = names.index(level)
        if arch.levels[i].is_dummy:
            raise SpecError(f"placement puts {tensor} at {level}, a dummy level that holds "
                            f"no data", key_path=f"placement.{tensor}")
        out[tensors.index(tensor)] = i
    return tuple(out)
