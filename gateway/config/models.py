"""The configuration documents, as the upstream Config API spells them in JSON.

Models are frozen: the same instance is shared by the Config API, the in-memory view and every
in-flight event, so none of them may change it under the others. Field names are snake_case in Python
and camelCase on the wire (``functionId``, ``authorizerId``...), exactly as upstream.

Unknown JSON keys are ignored and known ones match whatever their case (``functionID``), as upstream's
Go decoder did (see ``gateway.config.service._go_keys``), so existing clients keep working; everything that *is* understood is validated strictly, and a validation error
names the offending field.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic.alias_generators import to_camel

from gateway.common import (
    DEFAULT_SPACE,
    FUNCTION_TYPES,
    FunctionType,
    NAME_PATTERN,
    SECRET_MARKER,
    SPACE_MIN_LENGTH,
    url_password,
    with_url_password,
)
from gateway.config import ids

__all__ = [
    "CORS",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_SPACE",
    "HTTP_METHODS",
    "NAME_PATTERN",
    "PROVIDERS",
    "SECRET_MARKER",
    "AWSFirehoseProviderConfig",
    "AWSKinesisProviderConfig",
    "AWSLambdaProviderConfig",
    "AWSSQSProviderConfig",
    "EventType",
    "Function",
    "HTTPProviderConfig",
    "Model",
    "ProviderConfig",
    "RetryPolicy",
    "Subscription",
    "url_password",
    "with_url_password",
]

HTTP_METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")

Space = Annotated[str, Field(min_length=SPACE_MIN_LENGTH, pattern=NAME_PATTERN)]
Name = Annotated[str, Field(min_length=1, pattern=NAME_PATTERN)]
Metadata = dict[str, str]


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path must be absolute (start with '/'), got {value!r}")
    # A request's query string and fragment are never part of the path it is routed by, so a path with
    # them could never match anything; a control character cannot appear in a request line at all.
    for char in value:
        if char in "?#":
            raise ValueError(f"path must not contain {char!r} (the query string is not routed on), got {value!r}")
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise ValueError(f"path must not contain control characters, got {value!r}")
    return value


def _upper_method(value: str) -> str:
    method = value.upper()
    if method not in HTTP_METHODS:
        raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
    return method


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an absolute http:// or https:// URL, got {value!r}")
    return value


class Model(BaseModel):
    """Base of every configuration document: frozen, camelCase on the wire, unknown keys ignored."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The stored (and, after redaction, the returned) JSON form."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class EventType(Model):
    space: Space = DEFAULT_SPACE
    name: Name
    #: A function called before delivering events of this type; see the authorizer contract.
    authorizer_id: Name | None = None
    metadata: Metadata = Field(default_factory=dict)


# -- functions ---------------------------------------------------------------------------------


class RetryPolicy(Model):
    """How async delivery retries a failing function (new: upstream dropped on the first failure).
    The delay before attempt ``n+1`` is ``min(initial_backoff * multiplier**(n-1), max_backoff)``."""

    #: Attempts in all, the first one included; 1 means no retry.
    max_attempts: int = Field(default=3, ge=1, le=100)
    #: Seconds before the first retry.
    initial_backoff: float = Field(default=0.1, ge=0, le=3600)
    multiplier: float = Field(default=2.0, ge=1, le=100)
    #: Upper bound of one delay, in seconds.
    max_backoff: float = Field(default=5.0, ge=0, le=3600)

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failed attempts, before the next one."""
        return min(self.initial_backoff * self.multiplier ** (failed_attempts - 1), self.max_backoff)


#: The policy of a function that sets none.
DEFAULT_RETRY_POLICY = RetryPolicy()


class _ProviderConfigBase(Model):
    #: Fields never echoed back in a response (see :func:`gateway.config.service.redact`).
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()


class HTTPProviderConfig(_ProviderConfigBase):
    """An HTTP endpoint, called with ``POST`` and the event as a CloudEvent JSON body."""

    url: Annotated[str, AfterValidator(_http_url)]
    #: Seconds to wait for the response (upstream hard-coded 5).
    timeout: float = Field(default=5.0, gt=0, le=900)


class _AWSProviderConfig(_ProviderConfigBase):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("awsAccessKeyId", "awsSecretAccessKey", "awsSessionToken")

    region: str = Field(min_length=1)
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    #: Overrides the AWS endpoint (an emulator, a VPC endpoint); not part of upstream.
    endpoint_url: Annotated[str, AfterValidator(_http_url)] | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> _AWSProviderConfig:
        # One half of a key pair would be sent as is and fail at the first call with an AWS signature
        # error; say so when the function is registered instead.
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            given, missing = (("awsAccessKeyId", "awsSecretAccessKey") if self.aws_access_key_id is not None
                              else ("awsSecretAccessKey", "awsAccessKeyId"))
            raise ValueError(f"{given} is set but {missing} is not: give both, or neither to use the "
                             "gateway's own AWS credentials")
        if self.aws_session_token is not None and self.aws_access_key_id is None:
            raise ValueError("awsSessionToken needs awsAccessKeyId and awsSecretAccessKey")
        return self


class AWSLambdaProviderConfig(_AWSProviderConfig):
    arn: str = Field(min_length=1)


class AWSKinesisProviderConfig(_AWSProviderConfig):
    stream_name: str = Field(min_length=1)


class AWSFirehoseProviderConfig(_AWSProviderConfig):
    delivery_stream_name: str = Field(min_length=1)


class AWSSQSProviderConfig(_AWSProviderConfig):
    queue_url: str = Field(min_length=1)


#: Provider model of each function ``type`` (every one of FUNCTION_TYPES).
PROVIDERS: dict[str, type[_ProviderConfigBase]] = {
    "http": HTTPProviderConfig,
    "awslambda": AWSLambdaProviderConfig,
    "awskinesis": AWSKinesisProviderConfig,
    "awsfirehose": AWSFirehoseProviderConfig,
    "awssqs": AWSSQSProviderConfig,
}

# The provider's model is chosen by its *sibling* ``type``; Function copies that into this private key
# of the provider dict so pydantic's discriminated union can pick the model (and name it in errors).
assert tuple(PROVIDERS) == FUNCTION_TYPES, "a provider model per function type"

_TYPE_KEY = "__function_type__"


def _provider_type(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get(_TYPE_KEY)
    return next((name for name, model in PROVIDERS.items() if type(value) is model), None)


ProviderConfig = Annotated[
    Annotated[HTTPProviderConfig, Tag("http")]
    | Annotated[AWSLambdaProviderConfig, Tag("awslambda")]
    | Annotated[AWSKinesisProviderConfig, Tag("awskinesis")]
    | Annotated[AWSFirehoseProviderConfig, Tag("awsfirehose")]
    | Annotated[AWSSQSProviderConfig, Tag("awssqs")],
    Discriminator(_provider_type, custom_error_type="provider_type",
                  custom_error_message="provider cannot be checked without a valid function type"),
]


class Function(Model):
    space: Space = DEFAULT_SPACE
    function_id: Name
    type: FunctionType
    provider: ProviderConfig
    metadata: Metadata = Field(default_factory=dict)
    #: Async delivery retries; ``None`` means the gateway default (:class:`RetryPolicy()`).
    retry: RetryPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_provider(cls, data: Any) -> Any:
        """Validate ``provider`` with the model its sibling ``type`` names (the union alone cannot know).
        Also accepts the pre-0.6 upstream shape where ``type`` sat inside ``provider``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        provider = data.get("provider")
        if "type" not in data and isinstance(provider, dict) and "type" in provider:
            data["type"] = provider["type"]
        if isinstance(provider, dict) and data.get("type") in PROVIDERS:
            data["provider"] = {**provider, _TYPE_KEY: data["type"]}
        return data

    @model_validator(mode="after")
    def _provider_matches_type(self) -> Function:
        if type(self.provider) is not PROVIDERS[self.type]:
            raise ValueError(f"provider does not match function type {self.type!r}")
        return self

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retry or DEFAULT_RETRY_POLICY


# -- subscriptions and CORS ---------------------------------------------------------------------


class Subscription(Model):
    space: Space = DEFAULT_SPACE
    subscription_id: str = ""
    type: Literal["sync", "async"]
    event_type: Name
    function_id: Name
    path: Annotated[str, AfterValidator(_absolute_path)] = "/"
    method: Annotated[str, AfterValidator(_upper_method)] = "POST"
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # Upstream: an empty path means "/", a path without its leading slash gets one, an empty method
        # means POST.
        if isinstance(data, dict):
            data = dict(data)
            path = data.get("path")
            if path in (None, ""):
                data["path"] = "/"
            elif isinstance(path, str) and not path.startswith("/"):
                data["path"] = "/" + path
            if data.get("method") in (None, ""):
                data["method"] = "POST"
        return data

    @model_validator(mode="after")
    def _deterministic_id(self) -> Subscription:
        object.__setattr__(self, "subscription_id",
                           ids.subscription_id(self.type, self.event_type, self.function_id, self.path, self.method))
        return self


class CORS(Model):
    space: Space = DEFAULT_SPACE
    cors_id: str = ""
    method: Annotated[str, AfterValidator(_upper_method)]
    path: Annotated[str, AfterValidator(_absolute_path)]
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    allowed_methods: list[str] = Field(default_factory=lambda: ["HEAD", "GET", "POST"], min_length=1)
    allowed_headers: list[str] = Field(default_factory=lambda: ["Origin", "Accept", "Content-Type"], min_length=1)
    allow_credentials: bool = False
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _empty_lists_mean_default(cls, data: Any) -> Any:
        # Upstream filled defaults for missing *or empty* lists.
        if isinstance(data, dict):
            data = {k: v for k, v in data.items()
                    if not (k in ("allowedOrigins", "allowedMethods", "allowedHeaders") and v in (None, []))}
        return data

    @model_validator(mode="after")
    def _deterministic_id(self) -> CORS:
        object.__setattr__(self, "cors_id", ids.cors_id(self.method, self.path))
        return self

