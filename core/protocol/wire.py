"""The one converter between this library's values and MCP's wire JSON.

Fields are snake_case here and camelCase on the wire (`mime_type` -> `mimeType`,
`meta` -> `_meta`); fields left at None are omitted, and the `type` tag of content blocks is
always written. cattrs generates one unstructure function per class the first time it is
used, so the per-call cost is a plain function call.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

__all__ = ["camel", "converter", "to_wire"]


def camel(name: str) -> str:
    if name == "meta":
        return "_meta"
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()

    def hook_factory(cls: type) -> Any:
        overrides: dict[str, Any] = {}
        for field in attrs.fields(cls):
            wire_name = camel(field.name)
            # Only fields that default to None are optional on the wire; the rest (the `type`
            # tag, `content`, `isError`) are always written.
            optional = field.default is None
            overrides[field.name] = override(rename=wire_name, omit_if_default=optional)
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **overrides)

    conv.register_unstructure_hook_factory(attrs.has, hook_factory)
    return conv


converter = _make_converter()


def to_wire(value: Any) -> Any:
    """Unstructure a value (or a list of them) into wire JSON."""
    return converter.unstructure(value)
