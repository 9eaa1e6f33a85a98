"""Configuration loading: YAML in, validated pydantic models out, one clear error.

Pydantic validates configuration only; hot-path messages are plain slotted objects.
"""

from __future__ import annotations

import copy
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """Configuration problems, each reported as ``file: key.path: reason`` (exit code 2; no ``file:``
    for a problem that is not in a file, such as a command-line argument).

    ``path`` and ``reason`` are the first problem; ``errors`` holds every ``(path, reason)``
    found, so one run of ``config validate`` shows them all. ``str()`` is one line per problem.
    """

    def __init__(
        self, file: str | Path | None, path: str, reason: str, more: list[tuple[str, str]] | None = None
    ):
        #: None: the problem is not in a file (a command-line argument, a built-in default).
        self.file = str(file) if file is not None else None
        self.path = path
        self.reason = reason
        self.errors: list[tuple[str, str]] = [(path, reason), *(more or [])]
        super().__init__("\n".join(self._line(p, r) for p, r in self.errors))

    def _line(self, path: str, reason: str) -> str:
        where = f"{self.file}: " if self.file is not None else ""
        return f"{where}{path}: {reason}" if path else f"{where}{reason}"

    def renamed(self, old: str, new: str) -> ConfigError:
        """The same problems with key path ``old`` (and keys below it) reported as ``new``."""
        every = [
            (new + p[len(old) :] if p == old or p.startswith(old + ".") else p, r) for p, r in self.errors
        ]
        return ConfigError(self.file, every[0][0], every[0][1], every[1:])

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        """One error holding every problem of ``errors`` (all from one file), in order."""
        every = [e for err in errors for e in err.errors]
        return cls(errors[0].file, every[0][0], every[0][1], every[1:])


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
    """Base for every config model: unknown keys are errors, values are frozen, numbers finite
    (YAML's ``.nan`` fee made every PnL NaN; ``.inf`` is never a setting, leave the key out)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    file: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class MetricsConfig(StrictModel):
    """``metrics: {port: 9100, host: 127.0.0.1}``: serve Prometheus ``/metrics`` (docs/deployment.md).

    Shared by the marketstream and engine configs; absent (the default) starts no server and no thread.
    """

    #: Bind address: loopback unless configured (the engine's metrics show positions and PnL).
    host: str = Field("127.0.0.1", min_length=1)
    #: TCP port; 0 takes any free port and logs it (tests). Each process on a host needs its own.
    port: int = Field(9100, ge=0, le=65535)


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
            out.append(sys.intern(s.upper()))
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
    """Validate ``data`` against ``model``; every error goes into one :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A typo shows up twice: an unknown key and a missing one. Name the typo first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        found: dict[str, list[str]] = {}
        for err in errors:
            # One entry per key the user wrote: the alternatives of a union are one problem.
            reasons = found.setdefault(key_path(user_loc(model, tuple(err["loc"])), prefix), [])
            reason = _reason(model, err)
            if reason not in reasons:
                reasons.append(reason)
        merged = [(path, _either(reasons)) for path, reasons in found.items()]
        raise ConfigError(file, merged[0][0], merged[0][1], merged[1:]) from None


def validate_leniently(model: type[M], data: dict, file: str | Path | None = None) -> tuple[M, ConfigError | None]:
    """``validate``, and when that fails, the model again without the keys it refused, with that error.

    So a caller that goes on to check the sections plugins own (a feed's keys, a strategy's params)
    can report every problem in one run, not only the first section's. When leaving out the refused
    keys does not help (a required key missing), the error is raised as ``validate`` raises it."""
    try:
        return validate(model, data, file), None
    except ConfigError as first:
        try:
            model.model_validate(data)
            raise first  # (not reached: validate refused the same data)
        except ValidationError as exc:
            pruned = copy.deepcopy(data)
            if not all(_drop(pruned, user_loc(model, tuple(e["loc"]))) for e in exc.errors()):
                raise first from None
        try:
            return validate(model, pruned, file), first
        except ConfigError:
            raise first from None


def _drop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Remove the key (or list item) at ``loc`` from ``data``; False when it is not there."""
    if not loc:
        return False
    *parents, last = loc
    for part in parents:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(data, dict) and last in data:
        del data[last]
        return True
    if isinstance(data, list) and isinstance(last, int) and 0 <= last < len(data):
        data[last] = None  # (an item, not removed: the indexes of the others stay as the user wrote them)
        return True
    return False


def _either(reasons: list[str]) -> str:
    """``Input should be 'max'`` + ``Input should be a valid number`` -> one ``... or ...``."""
    head, *rest = reasons
    return " or ".join([head, *(r.removeprefix("Input should be ") for r in rest)])


def user_loc(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without the type tags pydantic adds inside unions (``speed.float`` -> ``speed``).

    Walks the model's annotations along ``loc``; where the type is no longer known (``Any``,
    an unknown key), the rest of ``loc`` is kept as it is.
    """
    out: list[Any] = []
    current: Any = model
    parts = list(loc)
    while parts:
        current = _unwrap(current)
        part = parts.pop(0)
        origin = typing.get_origin(current)
        members = [a for a in typing.get_args(current) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(members) > 1:
            current = None  # ``part`` names the union member tried: not a key the user wrote
            continue
        out.append(part)
        fields = getattr(current, "model_fields", None) if isinstance(current, type) else None
        if fields is not None:
            current = fields[part].annotation if part in fields else None
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            current = typing.get_args(current)[0] if typing.get_args(current) else None
        elif origin is dict:
            args = typing.get_args(current)
            current = args[1] if len(args) == 2 else None
        else:
            out.extend(parts)
            break
    return tuple(out)


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``; ``X | None`` -> ``X`` (pydantic adds no tag for None)."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _reason(model: type[BaseModel], err: Any) -> str:
    """Pydantic's message for one error, in the words a config author needs."""
    reason = str(err["msg"]).removeprefix("Value error, ")
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
    return reason


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
