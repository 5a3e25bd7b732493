"""How an operator configures one plugin, whatever the source (``--plugin``, plugins.toml, /v1/plugins).

One schema for every source keeps the three in step: the same keys, defaults and error messages in a
TOML file and in a JSON body. Validation is pydantic's, strict (a TOML string ``"10"`` is not an
integer), with unknown keys refused so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wasm_abi.capabilities import MAX_GRANT_CHARS, MAX_HTTP_GRANTS, HttpGrant
from wasm_abi.limits import Limits

__all__ = [
    "GRANTABLE_HEADERS",
    "LIMIT_KEYS",
    "NAME_PATTERN",
    "PluginCapabilities",
    "PluginSettings",
    "PluginSource",
    "PluginSettingsError",
    "check_name",
    "parse_settings",
]

#: Plugin names appear in URLs, metric labels and log lines: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Every field of :class:`wasm_abi.Limits` may be set per plugin under ``limits``.
LIMIT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Limits))
_LIMIT_TYPES: dict[str, type] = {f.name: (float if f.type in ("float", float) else int)
                                 for f in dataclasses.fields(Limits)}


class PluginSource(enum.StrEnum):
    """Where a plugin was configured; it decides who may change it (the API edits only its own)."""

    FLAG = "flag"
    FILE = "file"
    API = "api"


class PluginSettingsError(ValueError):
    """Invalid plugin settings. ``problems`` pairs each key path (``("limits", "sync_fuel")``) with
    what is wrong there, so the TOML loader can point at the line and the API can name the field."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, loc)) or '(settings)'}: {msg}" for loc, msg in problems))


#: Request headers withheld from plugins unless granted (credentials; the Events API's own token travels
#: in Authorization). Canonical case, as they appear in system events.
GRANTABLE_HEADERS: tuple[str, ...] = ("Authorization", "Cookie", "Proxy-Authorization")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token


def _canonical_header(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _http_grant(index: int, entry: Any) -> HttpGrant:
    """One entry of ``capabilities.http``: a URL prefix, or ``{prefix, privateAddresses}``."""
    where = f"http[{index}]"
    prefix: Any
    private: Any
    if isinstance(entry, str):
        prefix, private = entry, False
    elif isinstance(entry, dict):
        unknown = sorted(str(key) for key in entry if key not in ("prefix", "privateAddresses"))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0][:64]!r}; allowed keys: prefix, privateAddresses")
        prefix, private = entry.get("prefix"), entry.get("privateAddresses", False)
        if not isinstance(prefix, str):
            raise ValueError(f"{where}: 'prefix' (the URL prefix, a string) is required")
        if not isinstance(private, bool):
            raise ValueError(f"{where}: privateAddresses must be true or false")
    else:
        raise ValueError(f"{where}: must be a URL prefix string or a table {{prefix = \"...\", "
                         f"privateAddresses = true}}, got {type(entry).__name__}")
    if len(prefix) > MAX_GRANT_CHARS:  # before HttpGrant quotes it in a message
        raise ValueError(f"{where}: a URL prefix is {len(prefix)} characters, over the most of {MAX_GRANT_CHARS}")
    try:
        return HttpGrant(prefix, private)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


class PluginCapabilities(BaseModel):
    """What an operator grants one plugin beyond the default sandbox (ABI.md section 7.1); deny by
    default. Each grant is a key of this object (``[plugins.NAME.capabilities]`` in plugins.toml)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: A kv namespace of its own (the plugin's name) in the gateway's kv backend.
    kv: bool = False
    #: URL prefixes it may send requests to: strings, or ``{"prefix": ..., "privateAddresses": true}`` to
    #: let a host name resolve to a loopback/private/link-local address. Stored as written (normalized:
    #: a table without ``privateAddresses = true`` becomes its prefix string; duplicates dropped).
    http: list[str | dict[str, Any]] = Field(default_factory=list, json_schema_extra={
        "maxItems": MAX_HTTP_GRANTS,
        "items": {"anyOf": [
            {"type": "string", "maxLength": MAX_GRANT_CHARS},
            {"type": "object", "additionalProperties": False, "required": ["prefix"],
             "properties": {"prefix": {"type": "string", "maxLength": MAX_GRANT_CHARS},
                            "privateAddresses": {"type": "boolean"}}}]}})
    #: Counters, gauges and histograms of its own on ``/metrics`` (``eventgateway_plugin_custom_<name>``).
    metrics: bool = False
    #: Withheld request headers this plugin may see in system events (names, case-insensitive, of
    #: ``GRANTABLE_HEADERS``); stored in canonical case.
    sensitive_headers: list[str] = Field(default_factory=list, alias="sensitiveHeaders")

    @field_validator("http", mode="before")
    @classmethod
    def _http_prefixes(cls, value: Any) -> list[str | dict[str, Any]]:
        if not isinstance(value, list):
            raise ValueError("must be a list of URL prefixes (strings, or tables {prefix = \"...\", "
                             f"privateAddresses = true}}), got {type(value).__name__}")
        if len(value) > MAX_HTTP_GRANTS:
            raise ValueError(f"{len(value)} URL prefixes, over the most of {MAX_HTTP_GRANTS} per plugin")
        normalized: list[str | dict[str, Any]] = []
        for index, entry in enumerate(value):
            form = _http_grant(index, entry).to_json()
            if form not in normalized:
                normalized.append(form)
        return normalized

    @field_validator("sensitive_headers")
    @classmethod
    def _grantable(cls, value: list[str]) -> list[str]:
        granted: list[str] = []
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
            canonical = _canonical_header(name)
            if canonical not in GRANTABLE_HEADERS:
                raise ValueError(f"{name!r} is not withheld from plugins, so there is nothing to grant; "
                                 f"grantable headers: {', '.join(GRANTABLE_HEADERS)}")
            if canonical not in granted:
                granted.append(canonical)
        return granted

    def http_grants(self) -> tuple[HttpGrant, ...]:
        """The ``http`` prefixes as the host's grants (validated already)."""
        return tuple(HttpGrant(g) if isinstance(g, str) else HttpGrant(g["prefix"], bool(g.get("privateAddresses")))
                     for g in self.http)

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class PluginSettings(BaseModel):
    """Operator settings of one plugin. Immutable so a loaded plugin can safely share them."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Plugins run in ascending order; ties keep flag order, then file order, then name.
    order: int = 0
    #: A disabled plugin stays configured (and listed) but is not loaded.
    enabled: bool = True
    #: What a sync fault means for the event: ``closed`` rejects it (503), ``open`` lets it through.
    policy: Literal["closed", "open"] = "closed"
    #: Whether the plugin's ``{"event": ...}`` reactions may replace the event.
    rewrite: bool = True
    #: When set, the module must hash to this value or it is refused.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: Overrides of :class:`wasm_abi.Limits` fields (see ``LIMIT_KEYS``).
    limits: dict[str, int | float] = Field(default_factory=dict)
    #: The map handed to the plugin's ``init``.
    config: dict[str, Any] = Field(default_factory=dict)
    #: Grants beyond the default sandbox (``[plugins.NAME.capabilities]``); none by default.
    capabilities: PluginCapabilities = Field(default_factory=PluginCapabilities)

    @field_validator("limits")
    @classmethod
    def _known_limits(cls, value: dict[str, int | float]) -> dict[str, int | float]:
        problems = limit_problems(value)
        if problems:
            raise ValueError("; ".join(f"{loc[-1]}: {msg}" for loc, msg in problems))
        return value

    def to_limits(self) -> Limits:
        return Limits(**self.limits)  # type: ignore[arg-type]  # each value has its field's type (validated)

    def as_document(self) -> dict[str, Any]:
        """The JSON form stored and returned by the API (``sha256`` omitted when unpinned)."""
        return self.model_dump(exclude_none=True, by_alias=True)


def limit_problems(value: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each bad ``limits`` entry with its own key path, so an error points at its line."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key, number in value.items():
        loc: tuple[str | int, ...] = ("limits", key)
        if key not in _LIMIT_TYPES:
            problems.append((loc, f"unknown limit; known limits: {', '.join(LIMIT_KEYS)}"))
        elif isinstance(number, bool) or not isinstance(number, (int, float)):
            problems.append((loc, f"must be a number, got {number!r}"))
        elif _LIMIT_TYPES[key] is int and not isinstance(number, int):
            problems.append((loc, f"must be an integer, got {number!r}"))
        elif number <= 0:
            problems.append((loc, f"must be positive, got {number!r}"))
        else:
            try:
                Limits(**{key: number})
            except (TypeError, ValueError) as exc:
                problems.append((loc, str(exc)))
    return problems


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginSettingsError([(("name",), f"plugin name must match {NAME_PATTERN.pattern}, got {name!r}")])
    return name


def parse_settings(data: Any) -> PluginSettings:
    """Validate a settings mapping, turning pydantic's errors into a :class:`PluginSettingsError`."""
    if not isinstance(data, dict):
        raise PluginSettingsError([((), f"plugin settings must be a table/object, got {type(data).__name__}")])
    limits = data.get("limits")
    if isinstance(limits, dict):
        early = limit_problems(limits)
        if early:
            raise PluginSettingsError(early)
    try:
        return PluginSettings.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                model: type[BaseModel] = PluginCapabilities if loc[:1] == ("capabilities",) else PluginSettings
                allowed = [info.alias or key for key, info in model.model_fields.items()]
                message = f"unknown key {loc[-1]!r}; allowed keys: {', '.join(allowed)}"
            problems.append((loc, message))
        raise PluginSettingsError(problems) from None
