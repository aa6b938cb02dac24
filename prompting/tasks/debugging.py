"""Debugging: a real standard-library function with one generated corruption.

Corruptions work on the AST, so the corrupted code always parses: a changed
operator (+ -> -, < -> <=, and -> or ...), a dropped statement, or two names
swapped. The reference is the original, normalized by ``ast.unparse`` exactly like
the corrupted code, so the two differ only by the corruption.
"""

from __future__ import annotations

import ast
import copy
import random

from prompting.datasets.offline import dataset
from prompting.tasks import templates as t
from prompting.tasks.base import Challenge, Draft, Task

OPERATOR_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
}


def _operators(tree: ast.AST) -> list[tuple[ast.AST, str, int]]:
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign, ast.BoolOp)):
            if type(node.op) in OPERATOR_SWAPS:
                sites.append((node, "op", -1))
        elif isinstance(node, ast.Compare):
            sites.extend(
                (node, "ops", i) for i, op in enumerate(node.ops) if type(op) in OPERATOR_SWAPS
            )
    return sites


def change_operator(tree: ast.Module, rng: random.Random) -> str | None:
    sites = _operators(tree)
    if not sites:
        return None
    node, attr, i = rng.choice(sites)
    if attr == "op":
        old = node.op
        node.op = OPERATOR_SWAPS[type(old)]()
    else:
        old = node.ops[i]
        node.ops[i] = OPERATOR_SWAPS[type(old)]()
    return f"operator {type(old).__name__}"


def drop_line(tree: ast.Module, rng: random.Random) -> str | None:
    bodies = [
        n.body
        for n in ast.walk(tree)
        if isinstance(getattr(n, "body", None), list) and len(n.body) >= 2
    ]
    candidates = [
        (body, i)
        for body in bodies
        for i, stmt in enumerate(body)
        if not isinstance(stmt, ast.Return)
        and not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
    ]
    if not candidates:
        return None
    body, i = rng.choice(candidates)
    removed = body.pop(i)
    return f"dropped line {removed.lineno}"


def swap_names(tree: ast.Module, rng: random.Random) -> str | None:
    loads = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    ids = sorted({n.id for n in loads})
    if len(ids) < 2:
        return None
    a, b = rng.sample(ids, 2)
    first = [n for n in loads if n.id in (a, b)]
    node = rng.choice(first)
    node.id = b if node.id == a else a
    return f"name {a}<->{b}"


CORRUPTIONS = (change_operator, drop_line, swap_names)


def corrupt(code: str, rng: random.Random) -> tuple[str, str, str]:
    """(original normalized, corrupted, description); raises ValueError if no corruption
    changes this code."""
    tree = ast.parse(code)
    original = ast.unparse(tree)
    for fn in rng.sample(CORRUPTIONS, len(CORRUPTIONS)):
        candidate = copy.deepcopy(tree)
        what = fn(candidate, rng)
        if what is None:
            continue
        broken = ast.unparse(ast.fix_missing_locations(candidate))
        if broken != original:
            ast.parse(broken)
            return original, broken, what
    raise ValueError("no corruption applies")


class DebuggingTask(Task):
    name = "debugging"
    rewards = {"code_fix": 1.0}
    penalties = ("empty", "too_long", "refusal", "code_format")

    def draft(self, seed: int) -> Draft:
        rng = self.rng(seed)
        functions = dataset("stdlib")
        for _ in range(20):
            doc = functions.get(rng)
            try:
                original, broken, what = corrupt(doc.text, rng)
            except ValueError:
                continue
            return Draft(self, seed, doc, {"original": original, "broken": broken, "what": what})
        raise RuntimeError("no corruptible function found")  # pragma: no cover

    def finish(self, draft: Draft) -> Challenge:
        s = draft.state
        return self.challenge(
            draft,
            t.DEBUG_CHALLENGE.format(code=s["broken"]),
            s["original"],
            s["broken"],
            corruption=s["what"],
        )
