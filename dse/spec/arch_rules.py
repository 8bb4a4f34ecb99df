"""Reading an architecture's `rules:` and `dimension_granularity:` (checked by dse.arch.rules)."""

from __future__ import annotations

from typing import Any

from dse.arch.rules import RULES
from dse.errors import SpecError
from dse.spec.common import check_keys, require_mapping, where
from dse.spec.expr import ExpressionError, to_number

GRANULARITY_KEYS = {"pass_size", "multiple_of"}


# ----------------------------------------------------------------------------- reading


def _where(node, key=None) -> dict:
    return where(node, key)


def _whole(value, path: str, node, key, names: dict) -> int:
    try:
        v = to_number(value, names)
    except ExpressionError as exc:
        raise SpecError(str(exc), key_path=path, **_where(node, key)) from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or v < 1:
        raise SpecError("expected a whole number >= 1", key_path=path, found=value,
                        **_where(node, key))
    return v


def read_rules(value, path: str, parent, names: dict | None = None) -> dict[str, Any]:
    """Validate a `rules:` mapping -> {rule: value}."""
    names = names or {}
    node = require_mapping(value, path, parent, "rules")
    check_keys(node, set(RULES), path)
    out: dict[str, Any] = {}
    for k, v in node.items():
        if str(k).startswith("_"):
            continue
        kind = RULES[k][0]
        p = f"{path}.{k}"
        if kind == "ints":
            if not isinstance(v, list) or not v:
                raise SpecError("expected a list of whole numbers, like [1, 3]", key_path=p,
                                found=v, **_where(node, k))
            out[k] = [_whole(x, p, node, k, names) for x in v]
        elif kind == "groups":
            if not (isinstance(v, bool) or v == "depthwise"):
                raise SpecError("expected false, true or depthwise", key_path=p, found=v,
                                **_where(node, k))
            out[k] = v
        else:
            out[k] = _whole(v, p, node, k, names)
    return out


def read_granularity(value, path: str, parent,
                     names: dict | None = None) -> dict[str, tuple[int, int]]:
    """`{C: 64}` or `{C: {pass_size: 64, multiple_of: 4}}` -> {dim: (pass_size, multiple_of)}."""
    names = names or {}
    node = require_mapping(value, path, parent, "dimension_granularity")
    out: dict[str, tuple[int, int]] = {}
    for dim, v in node.items():
        if str(dim).startswith("_"):
            continue
        p = f"{path}.{dim}"
        if isinstance(v, dict):
            check_keys(v, GRANULARITY_KEYS, p)
            if "pass_size" not in v:
                raise SpecError("needs `pass_size:` (how many the hardware processes at once)",
                                key_path=p, **_where(v))
            size = _whole(v["pass_size"], f"{p}.pass_size", v, "pass_size", names)
            mult = (_whole(v["multiple_of"], f"{p}.multiple_of", v, "multiple_of", names)
                    if "multiple_of" in v else size)
            if size % mult:
                raise SpecError(f"multiple_of {mult} does not divide pass_size {size}",
                                key_path=p, **_where(v, "multiple_of"))
        else:
            size = mult = _whole(v, p, node, dim, names)
        out[str(dim)] = (size, mult)
    return out


