"""Small helpers shared by the format readers: typed field access with located errors."""

from __future__ import annotations

from dse.errors import SpecError, did_you_mean
from dse.spec.expr import INT_LIMIT, ExpressionError, to_number
from dse.spec.yamlload import Node


def where(node, key: str | None = None) -> dict:
    if isinstance(node, Node):
        return {"file": node.file_of(key) if key else node.file,
                "line": node.line_of(key) if key else node.line}
    return {"file": getattr(node, "file", None), "line": getattr(node, "line", None)}


def norm_key(key: str) -> str:
    return str(key).replace("-", "_")


def get(node: Node, key: str, default=None):
    """Look a key up accepting Timeloop's hyphen/underscore spellings."""
    if key in node:
        return node[key]
    alt = key.replace("_", "-")
    if alt in node:
        return node[alt]
    return default


def has(node: Node, key: str) -> bool:
    return key in node or key.replace("_", "-") in node


def require_mapping(value, path: str, parent=None, key: str | None = None) -> Node:
    if not isinstance(value, dict):
        raise SpecError(
            "expected a mapping of keys", key_path=path, found=value,
            **(where(parent, key) if parent is not None else where(value)),
        )
    return value


def require_list(value, path: str, parent=None, key: str | None = None) -> list:
    if not isinstance(value, list):
        raise SpecError(
            "expected a list", key_path=path, found=value,
            **(where(parent, key) if parent is not None else where(value)),
        )
    return value


def number(node: Node, key: str, path: str, names: dict | None = None, *, integer: bool = False,
           positive: bool = False):
    value = get(node, key)
    """A finite number (an int within 64-bit range if `integer`), refused here with its key
    path and file:line otherwise, so no NaN, infinity or huge integer reaches the model."""
    try:
        num = to_number(value, names)
    except ExpressionError as exc:
        raise SpecError(exc.message, key_path=f"{path}.{key}", **where(node, key)) from None
    if integer:
        if isinstance(num, float):
            if not num.is_integer():
                raise SpecError("expected a whole number", key_path=f"{path}.{key}",
                                found=value, **where(node, key))
            num = int(num)
        if abs(num) > INT_LIMIT:
            raise SpecError("this whole number is beyond the 64-bit range",
                            key_path=f"{path}.{key}", expected="|x| < 2**63", found=value,
                            **where(node, key))
    if positive and num <= 0:
        raise SpecError("expected a positive number", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return num


def whole_number(node: Node, key: str, path: str, default: int, *, minimum: int) -> int:
    """A count or seed read from a settings section: a whole number >= `minimum` (within 64-bit
    range), `default` when the key is absent; an explicit null, text, 1e400 or 0 evals is an error
    that names the key and file:line."""
    if not has(node, key):
        return default
    value = number(node, key, path, integer=True)
    if value < minimum:
        raise SpecError(f"expected a whole number >= {minimum}", key_path=f"{path}.{key}",
                        found=get(node, key), **where(node, key))
    return value


def check_keys(node: Node, allowed: set[str], path: str, ignore_prefix: str = "_") -> None:
    """Unknown keys are errors, with a 'did you mean' for typos."""
    for key in node:
        k = norm_key(key)
        if k.startswith(ignore_prefix) or k in allowed:
            continue
        raise SpecError(
            f"unknown key '{key}'", key_path=f"{path}.{key}" if path else str(key),
            expected="one of " + ", ".join(sorted(allowed)),
            hint=did_you_mean(k, allowed), **where(node, key),
        )
