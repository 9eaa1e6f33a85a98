"""Configuration loading: YAML in, validated pydantic models out, one clear error.

Pydantic validates configuration only; hot-path messages are plain slotted objects.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration problem, reported as ``file: key.path: reason`` (exit code 2)."""

    def __init__(self, file: str | Path | None, path: str, reason: str):
        self.file = str(file) if file is not None else "<config>"
        self.path = path
        self.reason = reason
        where = f"{self.file}: {path}: " if path else f"{self.file}: "
        super().__init__(where + reason)


def _scheme(*schemes: str) -> AfterValidator:
    def check(url: str) -> str:
        if not url.startswith(schemes):
            raise ValueError(f"{url!r} must start with {' or '.join(schemes)}")
        return url

    return AfterValidator(check)


#: A venue WebSocket endpoint (production default, a testnet, or loopback in tests).
WsUrl = Annotated[str, _scheme("ws://", "wss://")]
#: A venue REST base URL.
HttpUrl = Annotated[str, _scheme("http://", "https://")]


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    file: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class FeedConfig(StrictModel):
    """Keys every feed entry has. Plugins subclass it and add their own keys."""

    exchange: str
    symbols: list[str] = Field(default_factory=list)
    #: Replay a capture written by ``latentspeed record`` instead of connecting.
    replay: str | None = None
    #: ``max`` (as fast as possible) or a multiplier of recorded time.
    speed: Literal["max"] | float = "max"

    def endpoint(self) -> str:
        """Where the feed's data comes from, for messages that must name it (a URL, host:port, a file)."""
        if self.replay:
            return f"capture {self.replay}"
        for key in ("ws_url", "url"):
            v = getattr(self, key, None)
            if v:
                return str(v)
        host, port = getattr(self, "host", None), getattr(self, "port", None)
        return f"{host}:{port}" if host and port else self.exchange

    @field_validator("symbols")
    @classmethod
    def _normalised(cls, symbols: list[str]) -> list[str]:
        out = []
        for s in symbols:
            if not isinstance(s, str) or "-" not in s or s.startswith("-") or s.endswith("-"):
                raise ValueError(f"symbol {s!r} is not in the normalised BASE-QUOTE form (e.g. BTC-USDT)")
            out.append(s.upper())
        return out


def key_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    """``('feeds', 1, 'symbols')`` → ``feeds[1].symbols``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(file: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into a :class:`ConfigError`."""
    path = Path(file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(file, "", f"invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(model: type[M], data: Any, file: str | Path | None = None, prefix: str = "") -> M:
    """Validate ``data`` against ``model``; the first error becomes a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A typo shows up twice: an unknown key and a missing one. Name the typo first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        err = errors[0]
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
            fields = model_fields_at(model, err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1)
            if close:
                reason += f" (did you mean {close[0]!r}?)"
            elif fields:
                reason += f" (allowed: {', '.join(sorted(fields))})"
        elif err["type"] == "missing":
            reason = "required key is missing"
        more = len(exc.errors()) - 1
        if more:
            reason += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(file, key_path(tuple(err["loc"]), prefix), reason) from None


def model_fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model found at ``loc``; best effort, for error hints."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        args = getattr(ann, "__args__", ())
        current = next((a for a in (ann, *args) if hasattr(a, "model_fields")), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def load(model: type[M], file: str | Path) -> M:
    return validate(model, load_yaml(file), file)
