"""Upstream's reasons for refusing a sync subscription's path, word for word.

The routing table (:mod:`gateway.routing.path_tree`) decides whether paths conflict; this is a port of
upstream's ``internal/pathtree`` ``AddRoute`` (0.9.1), used only to word the refusal as upstream did
when upstream would have refused the path too.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.common import go_quote

__all__ = ["upstream_path_conflict"]


class _Node:
    __slots__ = ("children", "is_param", "is_static", "is_wildcard", "parameter", "segment", "taken")

    def __init__(self, segment: str = "") -> None:
        self.segment = segment
        self.children: dict[str, _Node] = {}
        self.is_param = segment.startswith(":")
        self.is_wildcard = segment.startswith("*")
        self.is_static = not self.is_param and not self.is_wildcard
        self.parameter = segment[1:] if not self.is_static else ""
        self.taken = False


def _add(root: _Node, route: str) -> str | None:
    if route == "/":
        if not root.taken:
            root.taken = True
            return None
        return "route / conflicts with existing route"
    segments = route.split("/")[1:]
    node = root
    for index, segment in enumerate(segments):
        if node.is_wildcard:
            return "wildcard must be the last parameter"
        child = node.children.get(segment)
        if child is None:
            child = next(iter(node.children.values()), None)
            if child is None:
                node.children[segment] = _Node(segment)
                if index == len(segments) - 1:
                    node.children[segment].taken = True
                    return None
                node = node.children[segment]
                continue
        is_param = segment.startswith(":")
        is_wildcard = segment.startswith("*")
        if child.is_wildcard or is_wildcard:
            return (f"wildcard with different name ({go_quote(child.parameter)}) already defined: "
                    f"for route: {route}")
        if child.is_param and child.segment != segment:
            return (f"parameter with different name ({go_quote(child.parameter)}) already defined: "
                    f"for route: {route}")
        if child.is_static and (is_param or is_wildcard):
            return f"static route already defined for route: {route}"
        if segment not in node.children:
            node.children[segment] = _Node(segment)
        if index == len(segments) - 1:
            if node.children[segment].taken:
                return f"route {route} conflicts with existing route"
            node.children[segment].taken = True
            return None
        node = node.children[segment]
    return None


def upstream_path_conflict(existing_paths: Iterable[str], new_path: str) -> str | None:
    """What upstream answered when ``new_path`` joined the sync subscriptions' ``existing_paths`` (same
    method and event type), or ``None`` when upstream took it."""
    root = _Node()
    for path in existing_paths:
        _add(root, path)  # upstream ignored errors of routes already stored
    return _add(root, new_path)
