"""Stripe's form-encoded parameters: bracket notation decoded into a tree, then read with Stripe's checks.

Stripe's v1 API takes ``application/x-www-form-urlencoded`` bodies (and query strings for GET) where
nesting is spelled with brackets: ``metadata[order]=42``, ``created[gte]=1700000000``, and lists either
as ``expand[]=a`` or, as the current SDK sends them, ``expand[0]=a``. Every parameter a handler does not
read is rejected with Stripe's "Received unknown parameter", so a typo in the caller fails loudly here
just as it would against Stripe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from backstop.fakepay.errors import ApiError, invalid_request

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100

KeyPath = tuple[str, ...]


def _split_key(raw_key: str) -> KeyPath:
    match = _KEY.match(raw_key)
    if not match:
        raise invalid_request(f"Invalid parameter name: {raw_key}", param=raw_key)
    return (match.group(1), *_SEGMENT.findall(match.group(2)))


def _display(path: KeyPath) -> str:
    return path[0] + "".join(f"[{segment}]" for segment in path[1:])


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``[("metadata[a]", "1"), ("expand[]", "x")]`` into ``{"metadata": {"a": "1"}, "expand": ["x"]}``."""
    tree: dict[str, Any] = {}
    for raw_key, value in pairs:
        path = _split_key(raw_key)
        node: Any = tree
        for depth, segment in enumerate(path[:-1]):
            if isinstance(node, list):
                raise invalid_request(f"Invalid array: {raw_key}", param=_display(path[: depth + 1]))
            child = node.setdefault(segment, [] if path[depth + 1] == "" else {})
            if isinstance(child, str):
                raise invalid_request(f"Invalid object: {raw_key}", param=_display(path[: depth + 1]))
            node = child
        last = path[-1]
        if isinstance(node, list):
            if last != "":
                raise invalid_request(f"Invalid array: {raw_key}", param=_display(path))
            node.append(value)
        elif last == "":
            raise invalid_request(f"Invalid array: {raw_key}", param=_display(path))
        elif isinstance(node.get(last), dict | list):
            raise invalid_request(f"Invalid object: {raw_key}", param=_display(path))
        else:
            node[last] = value
    return tree


@dataclass(frozen=True)
class CreatedRange:
    """``created[gt|gte|lt|lte]`` bounds in unix seconds; ``created=<t>`` is gte and lte at once."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    starting_after: str | None
    ending_before: str | None
    created: CreatedRange


class Params:
    """Typed, validated reads from a decoded parameter tree, remembering what was read."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self._tree = tree
        self._read: set[KeyPath] = set()

    def _peek(self, name: str) -> Any:
        node: Any = self._tree
        for segment in _split_key(name):
            if not isinstance(node, dict) or segment not in node:
                return None
            node = node[segment]
        return node

    def _value(self, name: str) -> Any:
        """The value at ``name``; reading it accepts everything beneath it as a known parameter."""
        self._read.add(_split_key(name))
        return self._peek(name)

    def _scalar(self, name: str) -> str | None:
        value = self._value(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid_request(f"Invalid string: {name} must be a single value", param=name)
        return value

    def text(self, name: str, *, max_length: int = 5000) -> str | None:
        """An optional string; an empty string means "not given", as it does on Stripe's create calls."""
        value = self._scalar(name)
        if not value:
            return None
        if len(value) > max_length:
            raise invalid_request(
                f"Invalid string: {value[:20]}...; must be at most {max_length} characters", param=name
            )
        return value

    def required_text(self, name: str, *, max_length: int = 5000) -> str:
        value = self.text(name, max_length=max_length)
        if value is None:
            raise invalid_request(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return value

    def choice(self, name: str, choices: frozenset[str]) -> str | None:
        value = self.text(name)
        if value is not None and value not in choices:
            raise invalid_request(
                f"Invalid {name}: must be one of {', '.join(sorted(choices))}", param=name
            )
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        text = self._scalar(name)
        if text is None or text == "":
            return None
        try:
            number = int(text)
        except ValueError:
            raise invalid_request(
                f"Invalid integer: {text}", param=name, code="parameter_invalid_integer"
            ) from None
        if minimum is not None and number < minimum:
            raise invalid_request(
                f"This value must be greater than or equal to {minimum}.",
                param=name,
                code="parameter_invalid_integer",
            )
        if maximum is not None and number > maximum:
            raise invalid_request(
                f"This value must be less than or equal to {maximum}.",
                param=name,
                code="parameter_invalid_integer",
            )
        return number

    def required_integer(self, name: str, *, minimum: int | None = None) -> int:
        number = self.integer(name, minimum=minimum)
        if number is None:
            raise invalid_request(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return number

    def boolean(self, name: str) -> bool | None:
        text = self._scalar(name)
        if text is None or text == "":
            return None
        if text not in {"true", "false"}:
            raise invalid_request(f"Invalid boolean: {text}", param=name)
        return text == "true"

    def texts(self, name: str) -> list[str]:
        """A list of strings, sent either as ``name[]=a`` or as ``name[0]=a`` (what the SDK sends)."""
        value = self._value(name)
        if value is None:
            return []
        if isinstance(value, dict) and all(key.isdigit() for key in value):
            value = [value[key] for key in sorted(value, key=int)]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid_request(f"Invalid array: {name} must be a list of strings", param=name)
        return value

    def metadata(self) -> dict[str, str]:
        """Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500; empty values dropped."""
        value = self._value("metadata")
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid_request("Invalid metadata: must be a hash of string keys and values", param="metadata")
        pairs: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                raise invalid_request(
                    f"Invalid value for metadata[{key}]: must be a string", param=f"metadata[{key}]"
                )
            if len(key) > METADATA_KEY_MAX_LENGTH:
                raise invalid_request(
                    f"Metadata keys can have up to {METADATA_KEY_MAX_LENGTH} characters", param=f"metadata[{key}]"
                )
            if len(item) > METADATA_VALUE_MAX_LENGTH:
                raise invalid_request(
                    f"Metadata values can have up to {METADATA_VALUE_MAX_LENGTH} characters",
                    param=f"metadata[{key}]",
                )
            if item:
                pairs[key] = item
        if len(pairs) > METADATA_MAX_KEYS:
            raise invalid_request(f"Metadata can have up to {METADATA_MAX_KEYS} keys", param="metadata")
        return pairs

    def created_range(self) -> CreatedRange:
        value = self._peek("created")
        if value is None:
            return CreatedRange()
        if isinstance(value, str):
            exact = self.integer("created")
            return CreatedRange(gte=exact, lte=exact)
        return CreatedRange(
            gt=self.integer("created[gt]"),
            gte=self.integer("created[gte]"),
            lt=self.integer("created[lt]"),
            lte=self.integer("created[lte]"),
        )

    def page(self) -> PageRequest:
        limit = self.integer("limit", minimum=1, maximum=LIST_LIMIT_MAX)
        starting_after = self.text("starting_after")
        ending_before = self.text("ending_before")
        if starting_after and ending_before:
            raise invalid_request(
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
                code="parameters_exclusive",
            )
        return PageRequest(
            limit=LIST_LIMIT_DEFAULT if limit is None else limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=self.created_range(),
        )

    def expand(self, allowed: frozenset[str]) -> frozenset[str]:
        requested = frozenset(self.texts("expand"))
        unknown = sorted(requested - allowed)
        if unknown:
            raise invalid_request(f"This property cannot be expanded ({unknown[0]}).", param="expand")
        return requested

    def reject_unknown(self) -> None:
        """Fail like Stripe on the first parameter no reader asked for (checked after all reads)."""
        for path in _leaf_paths(self._tree, ()):
            if not any(path[: len(read)] == read for read in self._read):
                raise ApiError(
                    400,
                    f"Received unknown parameter: {_display(path)}",
                    param=_display(path),
                    code="parameter_unknown",
                )


def _leaf_paths(node: Any, prefix: KeyPath) -> list[KeyPath]:
    if isinstance(node, dict):
        return [leaf for key, child in node.items() for leaf in _leaf_paths(child, (*prefix, key))]
    return [prefix]
