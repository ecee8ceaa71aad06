"""A hook call's body read from JSON text, each prefetch Bundle's entries left as text until a fact reads the key.

A 2,000-resource record is ~0.6 MB of prefetch, and most of it is results no check of the call reads: years of labs
on a trastuzumab order. Reading the body into Python values costs ~3 µs a KB; passing over it costs ~0.6 µs a KB.
So the call's own members are read, and each prefetch Bundle as far as its type, its paging links and its entries'
bounds; a key's entries are read, with the same options, when a fact first reads the key (prefetch.PrefetchResources).

What is and is not checked before that: the whole body is UTF-8 and well-formed JSON (msgspec checks the syntax of
what it passes over), so a malformed body is a 400 before anything else. What JSON allows but the service does not
hold (a number beyond a double, an integer of more than 4,300 digits) is refused when it is read: in a key's
entries, with a 400 naming the key when a fact first reads it; in a member or a key the call never reads, not at all.
A body in any other shape (not an object, prefetch not an object of objects, a BOM, another encoding) is read
whole, as json_text.strict_loads reads it.

The searchset pages prefetch fetches from fhirServer are read alike (BundleReader, is_utf8), with json_text.loads:
a FHIR server's answer is read as json.loads reads it, not strictly.
"""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from cds_hooks import json_text


class DeferredEntries:
    """A Bundle's `entry` array as it came: counted and well-formed, its items not yet read."""

    __slots__ = ("_items", "_loads")

    def __init__(self, items: list[msgspec.Raw], loads: Callable[[bytes], Any]) -> None:
        self._items = items
        self._loads = loads

    def __len__(self) -> int:
        return len(self._items)

    def load(self) -> list[Any]:
        """The entries as JSON values, read as the Bundle's reader reads JSON (BundleReader), raising what it raises."""
        # One read of the joined items: a read per item costs ~1 µs more each, and a key can have hundreds.
        return self._loads(b"[" + b",".join(self._items) + b"]")


class _Bundle(msgspec.Struct):
    """What the service reads of a Bundle before its entries: whether it is one, and its paging links."""

    resourceType: Any = None
    link: Any = msgspec.UNSET
    entry: list[msgspec.Raw] | None | msgspec.UnsetType = msgspec.UNSET


class BundleReader:
    """Reads a FHIR resource from JSON text, a Bundle as far as its type, its paging links and its entries' bounds:
    the entries are left as text (DeferredEntries) and read with `loads`, as anything but a Bundle is read whole.
    `parse_float` is the one `loads` uses, so the links read alike either way."""

    def __init__(self, loads: Callable[[bytes], Any], parse_float: Callable[[str], Any]) -> None:
        self._loads = loads
        self._decoder = msgspec.json.Decoder(_Bundle, float_hook=parse_float)

    def read(self, data: bytes | msgspec.Raw) -> Any:
        """The JSON value of `data`, which is_utf8 (msgspec does not check what it passes over), a Bundle's `entry` a
        DeferredEntries; raise what `loads` raises."""
        try:
            bundle = self._decoder.decode(data)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            return self._loads(bytes(data))
        if bundle.resourceType != "Bundle":
            # A single resource (a Patient read) is small and read whole: its elements are what the checks read.
            return self._loads(bytes(data))
        read: dict[str, Any] = {"resourceType": "Bundle"}
        if bundle.link is not msgspec.UNSET:
            read["link"] = bundle.link
        if bundle.entry is not msgspec.UNSET:
            read["entry"] = DeferredEntries(bundle.entry, self._loads) if bundle.entry is not None else None
        return read


def is_utf8(data: bytes) -> bool:
    """Whether `data` is UTF-8 text: msgspec checks the UTF-8 of the strings it reads, not of those it passes over."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Call(msgspec.Struct):
    """The members of a hook call that parse_hook_request reads; others are passed over, their syntax checked."""

    hook: Any = msgspec.UNSET
    hookInstance: Any = msgspec.UNSET
    fhirServer: Any = msgspec.UNSET
    fhirAuthorization: Any = msgspec.UNSET
    context: Any = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | None | msgspec.UnsetType = msgspec.UNSET


# Decimal numbers as json_text.strict_loads reads them: msgspec's own conversion reads five exponent digits.
_CALL = msgspec.json.Decoder(_Call, float_hook=json_text.finite_number)
_PREFETCH_VALUES = BundleReader(json_text.strict_loads, json_text.finite_number)


def read_hook_call(data: bytes) -> Any:
    """The body's JSON value, each prefetch Bundle's `entry` a DeferredEntries; raise json_text.NotJson."""
    if not is_utf8(data):
        return json_text.strict_loads(data)
    try:
        call = _CALL.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return json_text.strict_loads(data)
    body = {name: value for name in _Call.__struct_fields__ if (value := getattr(call, name)) is not msgspec.UNSET}
    if isinstance(call.prefetch, dict):
        body["prefetch"] = {key: _PREFETCH_VALUES.read(value) for key, value in call.prefetch.items()}
    return body
