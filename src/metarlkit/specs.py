"""Parsing and checking of `NAME:key=value,key=value` specs (tasks and agents).

The same strings are used on the command line, in config files and in JSON outputs, so a spec
round-trips: `format_spec(*parse_spec(s))` names the same object as `s`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any


class SpecError(ValueError):
    """A bad task or agent spec; the message is one line that names the fix."""


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Splits `NAME:key=value,...` into the name and a dict of raw string options."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty spec: give NAME or NAME:key=value,key=value")
    name, _, rest = spec.strip().partition(":")
    options: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise SpecError(
                    f"bad option {item!r} in {spec!r}: write options as key=value separated by commas"
                )
            if key in options:
                raise SpecError(f"option {key!r} given twice in {spec!r}")
            options[key] = value
    return name.strip(), options


def format_spec(name: str, options: dict[str, Any]) -> str:
    """Inverse of `parse_spec` for options whose values print without commas."""
    if not options:
        return name
    text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)  # noqa: E731  (true/false, as typed)
    return name + ":" + ",".join(f"{k}={text(v)}" for k, v in options.items())


def _convert(raw: Any, kind: Any, what: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            try:
                return int(raw)
            except ValueError:  # 5e7, 50_000_000.0: whole numbers written as floats
                value = float(raw)
                if not value.is_integer():
                    raise
                return int(value)
        if kind is float:
            return float(raw)
        if typing.get_origin(kind) is tuple:  # tuple[int, ...] written as 64,64
            item = typing.get_args(kind)[0]
            return tuple(_convert(x.strip(), item, what) for x in raw.split(",") if x.strip())
    except ValueError:
        raise SpecError(f"{what} must be {kind.__name__}, got {raw!r}") from None
    return raw


def build_options(cls: type, options: dict[str, Any], what: str) -> Any:
    """Instantiates the frozen dataclass `cls` from (possibly string) options, with clear errors.

    Unknown keys are rejected with the list of valid ones; values are converted to the field's
    annotated type; `__post_init__` checks raise `SpecError` (or ValueError, re-raised as one).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise SpecError(f"{what} has no option {unknown[0]!r}; valid options: {valid}")
    kwargs = {}
    limits = limits_of(cls)
    for key, raw in options.items():
        kind = hints[key]
        if typing.get_origin(kind) is typing.Union:  # Optional[X]
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind = args[0] if args else str
        kwargs[key] = _convert(raw, kind, f"{what} option {key!r}")
        _check_number(kwargs[key], limits.get(key), f"{what} option {key!r}")
    try:
        return cls(**kwargs)
    except SpecError:
        raise
    except (ValueError, TypeError) as err:
        raise SpecError(f"{what}: {err}") from None


def limits_of(cls: type) -> dict[str, int]:
    """The documented upper bounds of a dataclass's whole-number options (its `LIMITS`), which keep
    a typo such as arms=1e9 from reaching the compiler or the allocator."""
    return dict(getattr(cls, "LIMITS", {}))


def _check_number(value: Any, limit: int | None, what: str) -> None:
    """Non-finite floats are refused everywhere; whole numbers (each, in a tuple) up to `limit`."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise SpecError(f"{what} must be a finite number, got {v!r}")
        if limit is not None and isinstance(v, int) and not isinstance(v, bool) and v > limit:
            raise SpecError(f"{what} must be at most {limit:,}, got {v:,}")


def options_of(obj: Any) -> dict[str, Any]:
    """The init fields of a dataclass instance, in declaration order."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


def closest(name: str, names: typing.Iterable[str]) -> str:
    """`; did you mean X?` when a close match exists, else ''."""
    import difflib

    match = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""
