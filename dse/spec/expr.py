"""A small, safe arithmetic evaluator for attribute values such as `16*1024` or `log2(depth)`.

Only literals, names from a given context, arithmetic, comparisons, `a if c else b` and a fixed
set of math functions are allowed; anything else is an error (no `eval`). Work is bounded: every
intermediate number must be a finite float or an integer within 64-bit range (a power is checked
before it is computed), and arithmetic on text is refused, so no input can hang or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator

from dse.errors import SpecError, short_repr

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
FUNCTIONS = {
    "log2": math.log2,
    "log": math.log,
    "log10": math.log10,
    "sqrt": math.sqrt,
    "ceil": math.ceil,
    "floor": math.floor,
    "round": round,
    "abs": abs,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
}


INT_LIMIT = 2**63 - 1
"""Largest magnitude of an integer anywhere in an expression or a spec number (int64)."""
MAX_SHOWN = 80


class ExpressionError(SpecError, ValueError):
    """A value that is not a valid bounded arithmetic expression (callers add file:line)."""


def _shown(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def check_number(value, text: str = ""):
    """`value` if it is a finite float or an int within 64-bit range, else ExpressionError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -INT_LIMIT <= value <= INT_LIMIT:
            return value
        raise ExpressionError(f"{short_repr(value)}{_in(text)} is beyond the 64-bit integer "
                              f"range (|x| < 2**63)")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise ExpressionError(f"{value}{_in(text)} is not a finite number")
    raise ExpressionError(f"{short_repr(value)}{_in(text)} is not a number")


def _in(text: str) -> str:
    return f" in '{_shown(text)}'" if text else ""


def _number_operand(value, text: str, what: str):
    if isinstance(value, (bool, int, float)):
        return value
    raise ExpressionError(f"{what} needs numbers, found {short_repr(value)} in '{_shown(text)}'")


def _check_power(base, exponent, text: str) -> None:
    """Refuse a power whose result would leave the int64/float range, before computing it."""
    if isinstance(exponent, float) or isinstance(base, float):
        return  # float powers overflow with OverflowError (caught), they do not hang
    if exponent < 0 or abs(base) <= 1:
        return
    if exponent * math.log2(abs(base)) > 63:
        raise ExpressionError(f"'{_shown(text)}' computes a power beyond the 64-bit integer "
                              "range")


def evaluate_expression(text: str, names: dict[str, object] | None = None):
    """Evaluate `text` with `names` in scope; raise ExpressionError with a plain reason."""
    names = names or {}
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"'{_shown(text)}' is not an arithmetic expression") from None
    if _count_nodes(tree) > 200:
        raise ExpressionError(f"'{_shown(text)}' is too long an expression")
    return _eval(tree.body, names, str(text))


def _count_nodes(tree: ast.AST) -> int:
    return sum(1 for _ in ast.walk(tree))


def _eval(node: ast.AST, names: dict[str, object], text: str):
    """Evaluate one AST node; every number that comes out is checked with check_number."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        value = node.value
        return value if isinstance(value, str) else check_number(value, text)
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "true"):
            return True
        if node.id in ("False", "false"):
            return False
        raise ExpressionError(f"unknown name '{_shown(node.id)}' in '{_shown(text)}'")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _number_operand(_eval(node.left, names, text), text, "arithmetic")
        right = _number_operand(_eval(node.right, names, text), text, "arithmetic")
        if isinstance(node.op, ast.Pow):
            _check_power(left, right, text)
        try:
            result = _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as exc:
            raise ExpressionError(f"cannot compute '{_shown(text)}': {exc}") from None
        if isinstance(result, complex):
            raise ExpressionError(f"'{_shown(text)}' is not a real number")
        return check_number(result, text)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _number_operand(_eval(node.operand, names, text), text, "a sign or 'not'")
        return check_number(_UNARY[type(node.op)](operand), text)
    if isinstance(node, ast.Compare) and all(type(op) in _CMP for op in node.ops):
        left = _eval(node.left, names, text)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, names, text)
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise ExpressionError(f"cannot compare in '{_shown(text)}': {exc}") from None
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, names, text) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        cond = _eval(node.test, names, text)
        return _eval(node.body if cond else node.orelse, names, text)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn = FUNCTIONS.get(node.func.id)
        if fn is None:
            raise ExpressionError(f"function '{_shown(node.func.id)}' is not allowed in "
                                  f"'{_shown(text)}'")
        args = [_number_operand(_eval(a, names, text), text, f"{node.func.id}()")
                for a in node.args]
        try:
            result = fn(*args)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise ExpressionError(f"cannot compute '{_shown(text)}': {exc}") from None
        return check_number(result, text)
    raise ExpressionError(f"'{_shown(text)}' uses syntax that is not allowed in an attribute "
                          "value")


def to_number(value, names: dict[str, object] | None = None):
    """A number from a YAML scalar: ints/floats pass through, strings are evaluated."""
    if isinstance(value, bool):
        raise ExpressionError(f"expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        return check_number(value)
    if isinstance(value, str):
        result = evaluate_expression(value, names)
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            raise ExpressionError(f"'{_shown(value)}' does not evaluate to a number")
        return check_number(result, value)
    raise ExpressionError(f"expected a number, found {short_repr(value)}")
