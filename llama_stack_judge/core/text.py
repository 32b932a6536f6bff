r"""Text as callers and judges send it: strings nested in data, and lone surrogates, which are not text.

A lone surrogate (``"\ud800"``) is valid as a JSON escape but is no character in UTF-8: it cannot be sent to a judge,
hashed into a cache key or stored.
"""

from collections.abc import Iterator, Mapping

_SURROGATES_REPLACED = dict.fromkeys(range(0xD800, 0xE000), 0xFFFD)


def surrogate_count(text: str) -> int:
    """How many lone surrogates ``text`` holds (0 for text that encodes as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return sum(1 for char in text if "\ud800" <= char <= "\udfff")
    return 0


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by one U+FFFD."""
    return text.translate(_SURROGATES_REPLACED) if surrogate_count(text) else text


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, each lone surrogate as one U+FFFD: encoded once when there is none."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return without_surrogates(text).encode("utf-8")


def strings_in(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in plain data, however deep in lists and objects (keys included), with where it is."""
    if isinstance(value, str):
        yield path or "(top level)", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}".lstrip(".")
            yield from strings_in(key, where)
            yield from strings_in(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{path}[{index}]")
