"""Type hints to JSON Schema (`signature.py`), and JSON arguments back to the annotated types.

Types used in signatures live at module level: hints are resolved with `get_type_hints`, which
cannot see names local to a test function.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import attrs
import cattrs
import jsonschema_rs
import pytest

from mcp_core.core.services.context import Context
from mcp_core.core.services.signature import (
    Param,
    SchemaError,
    describe_function,
    schema_for_type,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    L = 3


class Point(TypedDict):
    x: int
    y: int
    label: NotRequired[str]


@attrs.frozen
class Address:
    street: str
    city: str = "Paris"
    zip_code: int | None = None


@dataclasses.dataclass
class Item:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)
    price: float = 0.0


@pytest.mark.parametrize(
    ("tp", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (Any, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array", "items": {}}),
        (set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (frozenset[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (dict, {"type": "object"}),
        (dict[str, Any], {"type": "object"}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Literal["a", "b", 3], {"enum": ["a", "b", 3]}),
        (Color, {"enum": ["red", "green"]}),
        (Size, {"enum": [1, 3]}),
        (int | None, {"type": ["integer", "null"]}),
        (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045 (the spelling is the test)
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (
            Union[list[int], None],  # noqa: UP007
            {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]},
        ),
        (Annotated[int, "How many"], {"type": "integer", "description": "How many"}),
    ],
)
def test_supported_types_map_to_json_schema(tp: Any, schema: dict[str, Any]) -> None:
    assert schema_for_type(tp) == schema


def test_a_typed_dict_is_an_object_and_not_required_keys_are_optional() -> None:
    assert schema_for_type(Point) == {
        "type": "object",
        "properties": {
            "x": {"type": "integer"},
            "y": {"type": "integer"},
            "label": {"type": "string"},
        },
        "required": ["x", "y"],
    }


def test_an_attrs_class_is_an_object_whose_fields_without_default_are_required() -> None:
    assert schema_for_type(Address) == {
        "type": "object",
        "properties": {
            "street": {"type": "string"},
            "city": {"type": "string"},
            "zip_code": {"type": ["integer", "null"]},
        },
        "required": ["street"],
    }


def test_a_dataclass_is_an_object_and_default_factories_are_optional() -> None:
    assert schema_for_type(Item) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "price": {"type": "number"},
        },
        "required": ["name"],
    }


def test_param_metadata_adds_description_title_examples_and_keywords() -> None:
    tp = Annotated[
        int,
        Param(description="Days ahead", title="Days", examples=[1, 3], schema={"minimum": 1}),
    ]
    assert schema_for_type(tp) == {
        "type": "integer",
        "description": "Days ahead",
        "title": "Days",
        "examples": [1, 3],
        "minimum": 1,
    }


@pytest.mark.parametrize(
    "tp", [datetime.date, bytes, complex, dict[int, str], type[int], Callable[[int], int]]
)
def test_unsupported_types_raise_schema_error(tp: Any) -> None:
    with pytest.raises(SchemaError):
        schema_for_type(tp)


# ---- whole functions ------------------------------------------------------------------------


def forecast(
    city: Annotated[str, "The city"],
    days: Annotated[int, Param(description="Days ahead", schema={"minimum": 1})] = 3,
    units: Literal["metric", "imperial"] = "metric",
    color: Color = Color.RED,
    note: str | None = None,
    tags: list[str] = [],  # noqa: B006 (a default JSON cannot carry is left out of the schema)
    *,
    ctx: Context,
) -> str:
    """The forecast for a city.

    Longer text that is not part of the summary.
    """
    return city


def test_a_function_becomes_an_input_schema_with_required_and_defaults() -> None:
    sig = describe_function(forecast, context_type=Context)
    assert sig.input_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city"},
            "days": {"type": "integer", "description": "Days ahead", "minimum": 1, "default": 3},
            "units": {"enum": ["metric", "imperial"], "default": "metric"},
            "color": {"enum": ["red", "green"], "default": "red"},
            "note": {"type": ["string", "null"], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    }
    assert sig.description == "The forecast for a city."
    assert sig.context_param == "ctx"
    assert sig.arguments == ("city", "days", "units", "color", "note", "tags")
    assert sig.return_annotation is str


def with_annotated_context(ctx: Annotated[Context, "injected"], n: int) -> int:
    return n


def test_a_context_parameter_is_excluded_from_the_schema_even_when_annotated() -> None:
    sig = describe_function(with_annotated_context, context_type=Context)
    assert "ctx" not in sig.input_schema["properties"]
    assert sig.input_schema["required"] == ["n"]
    assert sig.context_param == "ctx"


def test_without_a_context_type_a_context_parameter_is_not_describable() -> None:
    with pytest.raises(SchemaError):
        describe_function(with_annotated_context)


def no_parameters() -> None:
    return None


def test_a_function_without_parameters_takes_an_empty_object() -> None:
    sig = describe_function(no_parameters)
    assert sig.input_schema == {"type": "object", "properties": {}}
    assert sig.description is None


def takes_varargs(*values: int) -> None: ...


def takes_kwargs(**values: int) -> None: ...


def takes_positional_only(a: int, /) -> None: ...


def takes_bytes(data: bytes) -> None: ...


def takes_unknown(thing: UnknownName) -> None:  # type: ignore[name-defined] # noqa: F821
    ...


@pytest.mark.parametrize(
    "fn", [takes_varargs, takes_kwargs, takes_positional_only, takes_bytes, takes_unknown]
)
def test_signatures_that_cannot_be_described_raise_schema_error(fn: Callable[..., Any]) -> None:
    with pytest.raises(SchemaError):
        describe_function(fn, context_type=Context)


def test_every_derived_schema_is_a_valid_json_schema_2020_12() -> None:
    for fn in (forecast, with_annotated_context, no_parameters):
        schema = describe_function(fn, context_type=Context).input_schema
        jsonschema_rs.Draft202012Validator(schema)  # raises on an invalid schema


# ---- binding JSON back to the annotated types -----------------------------------------------


def typed(
    point: Point,
    address: Address,
    item: Item,
    color: Color,
    size: Size,
    ratio: float,
    count: int,
    pair: tuple[int, str],
    unique: set[int],
    maybe: float | None = None,
) -> None: ...


def test_validated_json_is_structured_into_the_annotated_types() -> None:
    sig = describe_function(typed)
    kwargs = sig.bind(
        {
            # cattrs reads `Point.__required_keys__`, which on Python 3.11 counts the
            # NotRequired `label` as required under PEP 563: send it.
            "point": {"x": 1, "y": 2, "label": "p"},
            "address": {"street": "Main"},
            "item": {"name": "pen", "tags": ["a"]},
            "color": "green",
            "size": 3,
            "ratio": 2,
            "count": 4,
            "pair": [1, "a"],
            "unique": [1, 2, 2],
            "maybe": 1,
        },
        cattrs.Converter(),
    )
    assert kwargs["point"] == {"x": 1, "y": 2, "label": "p"}
    assert kwargs["address"] == Address(street="Main")
    assert kwargs["item"] == Item(name="pen", tags=["a"])
    assert kwargs["color"] is Color.GREEN
    assert kwargs["size"] is Size.L
    assert kwargs["pair"] == (1, "a")
    assert kwargs["unique"] == {1, 2}
    # An integral JSON number is a float when the parameter says float.
    assert type(kwargs["ratio"]) is float
    assert type(kwargs["maybe"]) is float
    assert type(kwargs["count"]) is int


def test_a_whole_float_given_for_an_int_parameter_arrives_as_an_int() -> None:
    # JSON Schema's "integer" admits 1.0, and orjson reads `1.0` as a float.
    schema = describe_function(typed).input_schema
    assert jsonschema_rs.validator_for(schema["properties"]["count"]).is_valid(4.0)
    kwargs = describe_function(typed).bind({"count": 4.0}, cattrs.Converter())
    assert kwargs["count"] == 4
    assert type(kwargs["count"]) is int


def test_arguments_left_out_are_not_passed_so_python_defaults_apply() -> None:
    kwargs = describe_function(forecast, context_type=Context).bind(
        {"city": "Oslo"}, cattrs.Converter()
    )
    assert kwargs == {"city": "Oslo"}


def test_optional_context_parameter_is_injected_not_described() -> None:
    def tool(ctx: Context | None, text: str) -> str:
        return text

    sig = describe_function(tool, context_type=Context)
    assert sig.context_param == "ctx"
    assert list(sig.input_schema["properties"]) == ["text"]


def test_abstract_sequences_and_bare_sets_are_arrays() -> None:
    from collections.abc import Sequence

    assert schema_for_type(Sequence[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_for_type(set) == {"type": "array", "items": {}, "uniqueItems": True}
