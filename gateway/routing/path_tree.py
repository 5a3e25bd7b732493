"""A path tree with ``:param`` and ``*wildcard`` segments, and the conflict rules of the upstream gateway.

Paths are matched segment by segment, and a trailing slash is significant (``/a`` and ``/a/`` are two
paths). A request path is split on ``/`` *before* its percent-escapes are decoded, so ``%2F`` stays inside
its segment, and then each segment is decoded: ``/users/a%20b`` matches ``/users/:id`` with ``id`` =
``a b``, and a subscription on ``/caf\u00e9`` (or ``/caf%C3%A9``) matches either spelling. At any position a node holds *either* static segments, *or* one ``:param`` (always with the same
name), *or* one ``*wildcard`` (last segment only). Forbidding mixtures is what makes a match unambiguous
without priority rules, and it is why the Config API refuses a subscription whose path conflicts with an
existing one: the tree is the single place that decides what a conflict is.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

__all__ = ["InvalidPath", "PathConflict", "PathTree", "find_conflict", "split_path"]

T = TypeVar("T")


class InvalidPath(ValueError):
    """The path cannot be a subscription path (not absolute, empty parameter name, misplaced wildcard)."""


class PathConflict(ValueError):
    """The path overlaps with a path already in the tree."""


def _decoded(segments: list[str]) -> list[str]:
    """Percent-decode static segments; an escaped ':' or '*' ("%3Aid") stays as written so that it can
    never turn into a parameter or wildcard."""
    out = []
    for segment in segments:
        plain = unquote(segment) if "%" in segment else segment
        out.append(segment if plain[:1] in (":", "*") and plain != segment else plain)
    return out


def split_path(path: str) -> list[str]:
    """Segments of an absolute path; ``/`` is one empty segment and ``/a/`` ends with one. Static
    segments are percent-decoded (parameter and wildcard names are kept as written)."""
    if not path.startswith("/"):
        raise InvalidPath(f"path {path!r} must start with '/'")
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        if segment[:1] in (":", "*") and len(segment) == 1:
            raise InvalidPath(f"path {path!r}: segment {index + 1} has a '{segment}' without a name")
        if segment.startswith("*") and index != len(segments) - 1:
            raise InvalidPath(f"path {path!r}: wildcard {segment!r} must be the last segment")
    return [segment if segment[:1] in (":", "*") else _decoded([segment])[0] for segment in segments]


@dataclass(slots=True)
class _Node(Generic[T]):
    static: dict[str, _Node[T]] = field(default_factory=dict)
    param_name: str | None = None
    param: _Node[T] | None = None
    wildcard_name: str | None = None
    wild: _Node[T] | None = None
    values: list[T] = field(default_factory=list)
    path: str | None = None  # the path that ends here, for conflict messages

    def empty(self) -> bool:
        return not (self.static or self.param is not None or self.wild is not None or self.values)

    def kind(self) -> str | None:
        if self.static:
            return "static"
        if self.param is not None:
            return "param"
        if self.wildcard_name is not None:
            return "wildcard"
        return None


def _describe(node: _Node[T]) -> str:
    if node.param_name is not None:
        return f"parameter ':{node.param_name}'"
    if node.wildcard_name is not None:
        return f"wildcard '*{node.wildcard_name}'"
    return "static segment(s) " + ", ".join(repr(s) for s in sorted(node.static))


class PathTree(Generic[T]):
    """Paths to values. With ``unique=True`` a path holds one value (sync subscriptions); otherwise a
    list (async subscriptions: many functions may subscribe to the same path). With ``order``, the values
    of one path are kept sorted by it, whatever order they were added in."""

    def __init__(self, *, unique: bool = True, order: Callable[[T], Any] | None = None) -> None:
        self._root: _Node[T] = _Node()
        self._unique = unique
        self._order = order

    def add(self, path: str, value: T) -> None:
        """Insert ``value`` at ``path``; raises :class:`PathConflict` (tree unchanged) or :class:`InvalidPath`."""
        segments = split_path(path)
        self._check(path, segments)
        node = self._root
        for segment in segments:
            if segment.startswith(":"):
                if node.param is None:
                    node.param, node.param_name = _Node(), segment[1:]
                node = node.param
            elif segment.startswith("*"):
                if node.wild is None:
                    node.wild, node.wildcard_name = _Node(), segment[1:]
                node = node.wild
            else:
                node = node.static.setdefault(segment, _Node())
        node.path = path
        if self._order is None:
            node.values.append(value)
        else:
            insort(node.values, value, key=self._order)

    def conflict(self, path: str) -> str | None:
        """Why :meth:`add` would refuse ``path`` (the message of its exception), or ``None``: the check
        alone, in O(number of segments), the tree unchanged."""
        try:
            self._check(path, split_path(path))
        except (PathConflict, InvalidPath) as exc:
            return str(exc)
        return None

    def remove(self, path: str, value: T) -> bool:
        """Take ``value`` (the same object, else an equal one) off ``path`` as :meth:`add` put it there,
        pruning the nodes left empty, so that a parameter or wildcard name no longer used frees its
        position. False when it was not there."""
        try:
            segments = split_path(path)
        except InvalidPath:
            return False
        trail: list[tuple[_Node[T], str]] = []
        node: _Node[T] | None = self._root
        for segment in segments:
            assert node is not None
            parent = node
            if segment.startswith(":"):
                node = parent.param if parent.param_name == segment[1:] else None
            elif segment.startswith("*"):
                node = parent.wild if parent.wildcard_name == segment[1:] else None
            else:
                node = parent.static.get(segment)
            if node is None:
                return False
            trail.append((parent, segment))
        assert node is not None
        index = next((i for i, v in enumerate(node.values) if v is value), None)
        if index is None:
            index = next((i for i, v in enumerate(node.values) if v == value), None)
        if index is None:
            return False
        del node.values[index]
        if not node.values:
            node.path = None
        for parent, segment in reversed(trail):
            if not node.empty():
                break
            if segment.startswith(":"):
                parent.param, parent.param_name = None, None
            elif segment.startswith("*"):
                parent.wild, parent.wildcard_name = None, None
            else:
                del parent.static[segment]
            node = parent
        return True

    def _check(self, path: str, segments: list[str]) -> None:
        node: _Node[T] | None = self._root
        for segment in segments:
            assert node is not None
            kind = node.kind()
            if segment.startswith(":"):
                name = segment[1:]
                if kind in ("static", "wildcard") or (kind == "param" and node.param_name != name):
                    raise PathConflict(f"path {path!r}: parameter {segment!r} conflicts with {_describe(node)}")
                node = node.param
            elif segment.startswith("*"):
                name = segment[1:]
                if kind in ("static", "param") or (kind == "wildcard" and node.wildcard_name != name):
                    raise PathConflict(f"path {path!r}: wildcard {segment!r} conflicts with {_describe(node)}")
                node = node.wild
            else:
                if kind in ("param", "wildcard"):
                    raise PathConflict(f"path {path!r}: segment {segment!r} conflicts with {_describe(node)}")
                node = node.static.get(segment)
            if node is None:
                return
        if self._unique and node is not None and node.values:
            raise PathConflict(f"path {path!r} is already taken")

    def match(self, path: str) -> tuple[list[T], dict[str, str]] | None:
        """Values at the path that matches ``path`` (a request path, percent-encoded as it arrived) and
        the captured, decoded parameters, or ``None``."""
        if not path.startswith("/"):
            return None
        raw = path[1:].split("/")
        escaped = "%" in path
        keys = _decoded(raw) if escaped else raw  # how static segments are stored
        params: dict[str, str] = {}
        node = self._root
        for index, key in enumerate(keys):
            if node.wild is not None and node.wildcard_name is not None:
                rest = "/".join(raw[index:])
                params[node.wildcard_name] = unquote(rest) if escaped else rest
                node = node.wild
                break
            child = node.static.get(key)
            if child is not None:
                node = child
            elif node.param is not None and node.param_name is not None and key:
                params[node.param_name] = unquote(raw[index]) if escaped else key
                node = node.param
            else:
                return None
        if not node.values:
            return None
        return node.values, params

    def __bool__(self) -> bool:
        root = self._root
        return bool(root.static or root.param or root.wild or root.values)


def find_conflict(existing_paths: Iterable[str], new_path: str, *, unique: bool = True) -> str | None:
    """The reason ``new_path`` cannot join ``existing_paths``, or ``None``. For the Config API's check of a
    new subscription against the subscriptions with the same method and event type in its space."""
    tree: PathTree[None] = PathTree(unique=unique)
    for path in existing_paths:
        try:
            tree.add(path, None)
        except (PathConflict, InvalidPath):
            continue  # an old inconsistency must not block unrelated writes
    try:
        tree.add(new_path, None)
    except (PathConflict, InvalidPath) as exc:
        return str(exc)
    return None
