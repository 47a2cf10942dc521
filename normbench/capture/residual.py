"""Where each norm's residual add sits, read from the autograd graph of the forward
(docs/capture.md "Where the residual add sits").

For a norm whose input is x and output y:

- pre: x is an operand of an add whose other operand depends on y (the stream bypasses the
  norm: h + f(norm(h)), Pre-LN);
- post: x is itself the result of an add (the norm takes the residual sum: norm(h + f(h)),
  Post-LN), and x is not carried past the norm;
- final: post, in a model whose other judged norms are all pre (the last norm of a Pre-LN
  stack normalizes the stream once more);
- unknown: neither (x is not a sum, e.g. a QK-norm), or the forward built no graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _children(node: Any) -> list[Any]:
    return [n for n, _ in getattr(node, "next_functions", ()) if n is not None]


def _is_add(node: Any) -> bool:
    return node is not None and type(node).__name__.startswith("AddBackward")


def _post_order(roots: Sequence[Any]) -> list[Any]:
    """Every node reachable from `roots`, once each, children before parents (iterative, so a
    deep model cannot hit the recursion limit).

    The list also keeps the nodes alive, which the ids and `is` tests below rely on: torch 2.11
    makes a new Python object for a graph node whose last one was freed (torch 2.13 keeps one),
    so a node let go mid-walk would come back under another id, and a freed id is reused."""
    order: list[Any] = []
    seen: set[int] = set()
    stack = [(r, False) for r in roots if r is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in seen)
    return order


def _reach(order: Sequence[Any], y_nodes: Sequence[Any]) -> dict[int, int]:
    """For each node of `order` (a post-order): a bit mask of the norms whose output node it
    depends on (itself included)."""
    bits: dict[int, int] = {}
    for i, n in enumerate(y_nodes):
        if n is not None:
            bits[id(n)] = bits.get(id(n), 0) | (1 << i)
    reach: dict[int, int] = {}
    for node in order:
        mask = bits.get(id(node), 0)
        for c in _children(node):
            mask |= reach.get(id(c), 0)
        reach[id(node)] = mask
    return reach


def residual_roles(
    x_nodes: Sequence[Any], y_nodes: Sequence[Any], roots: Sequence[Any]
) -> list[str]:
    """The role of each norm call (pre, post, final, unknown) from the grad_fn nodes of its
    input and output and the graph's roots (the output's node, and the outputs' of every norm
    so a forward that failed part-way is still read up to there)."""
    order = _post_order(roots)  # held to the end: see _post_order
    reach = _reach(order, y_nodes)
    # The norms whose input is an operand of an add whose other operand depends on the norm.
    pre: set[int] = set()
    for add in filter(_is_add, order):
        kids = _children(add)
        for i, xn in enumerate(x_nodes):
            if xn is None or not any(k is xn for k in kids):
                continue
            if any(k is not xn and reach.get(id(k), 0) >> i & 1 for k in kids):
                pre.add(i)
    roles = []
    for i, xn in enumerate(x_nodes):
        if i in pre:
            roles.append("pre")
        elif _is_add(xn):
            roles.append("post")
        else:
            roles.append("unknown")
    judged = [r for r in roles if r != "unknown"]
    if judged.count("post") == 1 and len(judged) > 1:
        roles = ["final" if r == "post" else r for r in roles]
    return roles
