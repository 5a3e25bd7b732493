"""Per-space routes built from the configuration view.

A :class:`SpaceRoutes` is rebuilt lazily when ``view.generation(space)`` moves, so the event path does a
dictionary lookup and a tree walk, never a scan of every subscription. Each space has its own routes:
an event routed in one space never reaches another space's subscribers (upstream shared one cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from .path_tree import InvalidPath, PathConflict, PathTree

__all__ = ["Match", "RouteTable", "SpaceRoutes"]

log = logging.getLogger("gateway.routing")


class _View(Protocol):
    def subscriptions(self, space: str) -> list[Any]: ...
    def cors(self, space: str) -> list[Any]: ...
    def generation(self, space: str) -> int: ...


@dataclass(frozen=True, slots=True)
class Match:
    subscriptions: list[Any]
    params: dict[str, str]


@dataclass(slots=True)
class SpaceRoutes:
    generation: int
    sync: dict[tuple[str, str], PathTree[Any]] = field(default_factory=dict)
    async_: dict[tuple[str, str], PathTree[Any]] = field(default_factory=dict)
    cors: dict[str, PathTree[Any]] = field(default_factory=dict)

    def sync_subscription(self, method: str, path: str, event_type: str) -> Match | None:
        tree = self.sync.get((method, event_type))
        found = tree.match(path) if tree else None
        return Match(found[0], found[1]) if found else None

    def async_subscriptions(self, method: str, path: str, event_type: str) -> Match | None:
        tree = self.async_.get((method, event_type))
        found = tree.match(path) if tree else None
        return Match(found[0], found[1]) if found else None

    def cors_config(self, method: str, path: str) -> Any | None:
        tree = self.cors.get(method)
        found = tree.match(path) if tree else None
        return found[0][0] if found else None


def _build(view: _View, space: str, generation: int) -> SpaceRoutes:
    routes = SpaceRoutes(generation)
    for sub in sorted(view.subscriptions(space), key=lambda s: s.subscription_id):
        table = routes.sync if sub.type == "sync" else routes.async_
        tree = table.setdefault((sub.method, sub.event_type), PathTree(unique=sub.type == "sync"))
        try:
            tree.add(sub.path, sub)
        except (PathConflict, InvalidPath) as exc:  # the Config API refuses these; a racing write may not
            log.warning("subscription %s in space %s not routed: %s", sub.subscription_id, space, exc)
    for config in view.cors(space):
        tree = routes.cors.setdefault(config.method, PathTree())
        try:
            tree.add(config.path, config)
        except (PathConflict, InvalidPath) as exc:
            log.warning("CORS %s in space %s not applied: %s", config.cors_id, space, exc)
    return routes


_NO_ROUTES = SpaceRoutes(0)


class RouteTable:
    """The routes of every space, each rebuilt when its generation changes."""

    def __init__(self, view: _View) -> None:
        self._view = view
        self._spaces: dict[str, SpaceRoutes] = {}

    def space(self, space: str) -> SpaceRoutes:
        generation = self._view.generation(space)
        if generation == 0:  # never configured: nothing to route, and no state kept for what a client named
            return _NO_ROUTES
        routes = self._spaces.get(space)
        if routes is None or routes.generation != generation:
            routes = _build(self._view, space, generation)
            self._spaces[space] = routes
        return routes
