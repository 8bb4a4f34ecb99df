"""A small, safe arithmetic evaluator for attribute values such as `16*1024` or `log2(depth)`.

Only literals, names from a given context, arithmetic, comparisons, `a if c else b` and a fixed
set of math functions are allowed; anything else is an error (no `eval`).
"""

from __future__ import annotations

import ast
import math
import operator

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


class ExpressionError(ValueError):
    pass


def evaluate_expression(text: str, names: dict[str, object] | None = None):
    """Evaluate `text` with `names` in scope; raise ExpressionError with a plain reason."""
    names = names or {}
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"'{text}' is not an arithmetic expression") from None
    if _count_nodes(tree) > 200:
        raise ExpressionError(f"'{text}' is too long an expression")
    return _eval(tree.body, names, str(text))


def _count_nodes(tree: ast.AST) -> int:
    return sum(1 for _ in ast.walk(tree))


def _eval(node: ast.AST, names: dict[str, object], text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "true"):
            return True
        if node.id in ("False", "false"):
            return False
        raise ExpressionError(f"unknown name '{node.id}' in '{text}'")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, names, text), _eval(node.right, names, text)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
            raise ExpressionError(f"exponent too large in '{text}'")
        try:
            return _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError) as exc:
            raise ExpressionError(f"cannot compute '{text}': {exc}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, names, text))
    if isinstance(node, ast.Compare) and all(type(op) in _CMP for op in node.ops):
        left = _eval(node.left, names, text)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, names, text)
            if not _CMP[type(op)](left, right):
                return False
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
            raise ExpressionError(f"function '{node.func.id}' is not allowed in '{text}'")
        args = [_eval(a, names, text) for a in node.args]
        try:
            return fn(*args)
        except (TypeError, ValueError) as exc:
            raise ExpressionError(f"cannot compute '{text}': {exc}") from None
    raise ExpressionError(f"'{text}' uses syntax that is not allowed in an attribute value")


def to_number(value, names: dict[str, object] | None = None):
    """A number from a YAML scalar: ints/floats pass through, strings are evaluated."""
    if isinstance(value, bool):
        raise ExpressionError(f"expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        result = evaluate_expression(value, names)
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            raise ExpressionError(f"'{value}' does not evaluate to a number")
        return result
    raise ExpressionError(f"expected a number, found {value!r}")
