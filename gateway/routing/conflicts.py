"""The Config API's subscription path-conflict check, kept incrementally per space.

A new subscription may not conflict with the subscriptions of its space that share its type, method and
event type (:func:`~gateway.routing.path_tree.find_conflict`: the routing table's own rules). Checking that by
reading every subscription of the space and building a fresh tree costs O(subscriptions) per create (134 ms at
5,000). :class:`ConflictIndex` keeps, per space and per (type, method, event type), the tree that check would
build, fed by the configuration view, so a check is one walk of the new path.

What it answers is exactly what the full check answers over the same subscriptions:

- ``find_conflict`` adds the existing paths in subscription-id order and skips any that conflicts (an old
  inconsistency, from racing writes, must not block unrelated writes), so when a group holds conflicting
  paths the tree depends on that order. A group's tree is updated in place only while every path of the group
  is in it (then the order does not matter); once a path is refused, the group's tree is rebuilt in id order
  when next asked, and again after each change until the group is consistent again.
- Upstream's wording of a sync refusal (:func:`~gateway.config.upstream_paths.upstream_path_conflict`) is
  computed from the group's paths in id order when a path is refused; only refusals pay that O(group) walk.

The index mirrors the view (a listener plus a lazy build of each space from the view's documents) and says
which store revision it has seen (:attr:`ConflictIndex.revision`); whether that is recent enough for a write
is the config service's decision (on etcd it checks here and lets the create's transaction verify that no
subscription was created in the space after that revision, :meth:`~gateway.store.base.Store.create_guarded`;
otherwise it asks the store whether anything was written after that revision,
:meth:`~gateway.store.base.Store.unchanged_since`, or compares with the store's
:meth:`~gateway.store.base.Store.fingerprint`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.config.upstream_paths import upstream_path_conflict
from gateway.store.base import Change, Kind

from .path_tree import InvalidPath, PathConflict, PathTree

__all__ = ["ConflictIndex", "GroupKey", "SpaceConflicts"]

GroupKey = tuple[str, str, str]
"""(type, method, event type): the subscriptions one path is checked against."""


class _View(Protocol):
    def subscriptions(self, space: str) -> list[Any]: ...
    def subscription(self, space: str, id: str) -> Any | None: ...
    def refused(self, kind: Kind, space: str) -> set[str]: ...


class _Group:
    __slots__ = ("clean", "paths", "tree", "unique")

    def __init__(self, unique: bool) -> None:
        self.unique = unique
        self.paths: dict[str, str] = {}  # subscription id -> path
        self.tree: PathTree[str] | None = PathTree(unique=unique)  # None: rebuild before use
        self.clean = True  # the tree holds every path of the group

    def put(self, id: str, path: str) -> None:
        self.paths[id] = path
        if self.tree is None or not self.clean:
            self.tree = None
            return
        try:
            self.tree.add(path, id)
        except (PathConflict, InvalidPath):
            self.tree = None  # now the id order decides which path the check keeps

    def remove(self, id: str) -> None:
        path = self.paths.pop(id)
        if self.tree is not None and self.clean:
            self.tree.remove(path, id)
        else:
            self.tree = None

    def built(self) -> PathTree[str]:
        if self.tree is None:
            tree: PathTree[str] = PathTree(unique=self.unique)
            self.clean = True
            for id in sorted(self.paths):
                try:
                    tree.add(self.paths[id], id)
                except (PathConflict, InvalidPath):
                    self.clean = False
            self.tree = tree
        return self.tree

    def ordered_paths(self) -> list[str]:
        return [self.paths[id] for id in sorted(self.paths)]


class SpaceConflicts:
    """The subscriptions of one space, grouped as the conflict check groups them."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, _Group] = {}
        self._keys: dict[str, GroupKey] = {}  # subscription id -> its group
        # Stored subscriptions the view refused as invalid: no path to check (the full check skips them
        # too), but counted, so that the count can be compared with the store's.
        self.refused: set[str] = set()

    def __len__(self) -> int:
        """Every stored subscription of the space, valid or not."""
        return len(self._keys) + len(self.refused)

    def put(self, subscription: Any) -> None:
        """Add a subscription; a no-op when its id is there (every field the check uses is part of the id)."""
        id = subscription.subscription_id
        if id in self._keys:
            return
        key: GroupKey = (subscription.type, subscription.method, subscription.event_type)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(unique=subscription.type == "sync")
        self._keys[id] = key
        group.put(id, subscription.path)

    def remove(self, id: str) -> None:
        key = self._keys.pop(id, None)
        if key is None:
            return
        group = self._groups[key]
        group.remove(id)
        if not group.paths:
            del self._groups[key]

    def fits(self, type: str, method: str, event_type: str, path: str) -> bool:
        """``path`` fits its group, and the group is consistent (every path of it in its tree). Then it fits
        any subset of the group too (removing paths from a tree removes conflicts, never adds one): a create
        checked here stays valid if subscriptions are deleted before it commits. A group holding conflicting
        paths (an old race's leftover) answers False, even when :meth:`conflict` finds nothing: which of its
        paths the check keeps depends on the subscriptions the store holds, so ask the store."""
        group = self._groups.get((type, method, event_type))
        if group is None:
            return PathTree[str](unique=type == "sync").conflict(path) is None
        tree = group.built()
        return group.clean and tree.conflict(path) is None

    def conflict(self, type: str, method: str, event_type: str, path: str) -> tuple[str, str | None] | None:
        """``None`` when ``path`` fits, else (the routing tree's reason, upstream's reason for a sync
        subscription where upstream refused it too): the same answer as ``find_conflict`` and
        ``upstream_path_conflict`` over the group's paths in subscription-id order."""
        group = self._groups.get((type, method, event_type))
        if group is None:
            tree: PathTree[str] = PathTree(unique=type == "sync")
            problem = tree.conflict(path)
            return (problem, upstream_path_conflict((), path) if type == "sync" else None) if problem else None
        problem = group.built().conflict(path)
        if problem is None:
            return None
        return problem, upstream_path_conflict(group.ordered_paths(), path) if type == "sync" else None


class ConflictIndex:
    """Every space's :class:`SpaceConflicts`, mirroring a configuration view.

    Register :meth:`on_change` as a listener of the view *before* the view loads (the config service is
    built before the view starts), so :attr:`revision` covers every change the view applied. A space is
    built from the view's documents the first time it is asked for, then kept by the listener: each change
    re-reads that one subscription from the view, so the index holds what the view holds, deletes,
    reloads after a watch reset and documents the view refuses as invalid included.
    """

    def __init__(self, view: _View) -> None:
        self._view = view
        self._spaces: dict[str, SpaceConflicts] = {}
        self._revision = 0

    @property
    def revision(self) -> int:
        """The highest store revision of a change this index has been told about."""
        return self._revision

    def on_change(self, change: Change) -> None:
        self._revision = max(self._revision, change.revision)
        if change.kind is not Kind.SUBSCRIPTIONS:
            return
        space = self._spaces.get(change.space)
        if space is None:
            return  # built from the view when first asked for
        current = self._view.subscription(change.space, change.id)
        space.refused.discard(change.id)
        if current is None:
            space.remove(change.id)
            if change.value is not None:  # stored, but the view refused it
                space.refused.add(change.id)
        else:
            space.put(current)

    def space(self, name: str) -> SpaceConflicts:
        space = self._spaces.get(name)
        if space is None:
            space = self._spaces[name] = _built(self._view.subscriptions(name))
            space.refused = self._view.refused(Kind.SUBSCRIPTIONS, name)
        return space

    def forget(self, name: str) -> None:
        """Drop a space's index (rebuilt from the view when next asked for)."""
        self._spaces.pop(name, None)


def _built(subscriptions: Iterable[Any]) -> SpaceConflicts:
    space = SpaceConflicts()
    for subscription in subscriptions:
        space.put(subscription)
    return space
