"""The path tree decides both routing and the Config API's conflict check, so both sides are tested here."""

import re

import pytest

from gateway.routing.path_tree import InvalidPath, PathConflict, PathTree, find_conflict


def test_static_param_and_wildcard_matches() -> None:
    tree: PathTree[str] = PathTree()
    tree.add("/", "root")
    tree.add("/users/:id", "user")
    tree.add("/users/:id/posts", "posts")
    tree.add("/files/*rest", "files")
    assert tree.match("/") == (["root"], {})
    assert tree.match("/users/42") == (["user"], {"id": "42"})
    assert tree.match("/users/42/posts") == (["posts"], {"id": "42"})
    assert tree.match("/files/a/b/c.txt") == (["files"], {"rest": "a/b/c.txt"})
    assert tree.match("/users/") is None  # a parameter never matches an empty segment
    assert tree.match("/nope") is None
    assert tree.match("/files") is None


def test_trailing_slash_is_significant() -> None:
    tree: PathTree[str] = PathTree()
    tree.add("/a", "no-slash")
    tree.add("/a/", "slash")
    assert tree.match("/a") == (["no-slash"], {})
    assert tree.match("/a/") == (["slash"], {})


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        ("/users/:id", "/users/:name", "parameter ':name' conflicts with parameter ':id'"),
        ("/users/:id", "/users/me", "segment 'me' conflicts with parameter ':id'"),
        ("/users/me", "/users/:id", "parameter ':id' conflicts with static segment(s) 'me'"),
        ("/files/*rest", "/files/x", "segment 'x' conflicts with wildcard '*rest'"),
        ("/files/:id", "/files/*rest", "wildcard '*rest' conflicts with parameter ':id'"),
        ("/same", "/same", "already taken"),
    ],
)
def test_conflicts_are_refused_with_the_reason(first: str, second: str, reason: str) -> None:
    tree: PathTree[str] = PathTree()
    tree.add(first, "one")
    with pytest.raises(PathConflict, match=re.escape(reason)):
        tree.add(second, "two")
    assert tree.match(first.replace(":id", "7").replace("*rest", "x")) is not None
    assert find_conflict([first], second) is not None


def test_multi_valued_tree_keeps_every_subscriber_of_a_path() -> None:
    tree: PathTree[str] = PathTree(unique=False)
    tree.add("/orders/:id", "f1")
    tree.add("/orders/:id", "f2")
    assert tree.match("/orders/9") == (["f1", "f2"], {"id": "9"})
    assert find_conflict(["/orders/:id"], "/orders/:id", unique=False) is None
    assert find_conflict(["/orders/:id"], "/orders/:oid", unique=False) is not None


@pytest.mark.parametrize("path", ["relative", "/a/*rest/b", "/a/:", "/*"])
def test_invalid_paths_are_named(path: str) -> None:
    with pytest.raises(InvalidPath, match="path"):
        PathTree().add(path, 1)


def test_request_segments_are_split_then_percent_decoded() -> None:
    tree: PathTree[str] = PathTree()
    tree.add("/users/:id", "user")
    tree.add("/files/*rest", "files")
    tree.add("/caf\u00e9/menu", "cafe")
    tree.add("/a%20b", "spaced")
    tree.add("/%3Aliteral", "literal")
    # %2F stays inside its segment: still one parameter, decoded.
    assert tree.match("/users/a%20b%2Fc") == (["user"], {"id": "a b/c"})
    assert tree.match("/files/x%2Fy/z") == (["files"], {"rest": "x/y/z"})
    assert tree.match("/caf%C3%A9/menu") == (["cafe"], {})
    assert tree.match("/a%20b") == (["spaced"], {})
    assert tree.match("/%3Aliteral") == (["literal"], {})  # an escaped ':' is not a parameter
    assert tree.match("/users/a/b") is None
    assert tree.match("/users/%3Ax") == (["user"], {"id": ":x"})
    # Two spellings of one path are the same path for the conflict check.
    assert find_conflict(["/caf%C3%A9"], "/caf\u00e9") == "path '/caf\u00e9' is already taken"
