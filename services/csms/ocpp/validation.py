"""Payload validation against the official OCPP 2.0.1 JSON schemas (Part 4, section 4.1.7).

The schemas are the ones shipped with the `ocpp` package; each is compiled once, when a process
starts (`compile_validators`) or on first use.
Schema violations map onto the RPC error codes of Part 4, Table 8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

from csms.ocpp.errors import (
    FormatViolation,
    OccurrenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)

Validator = Callable[[dict[str, Any]], Any]

_SCHEMA_PACKAGE = "ocpp.v201.schemas"

# JSON-schema keyword that failed -> the OCPP error class that describes it.
_ERROR_BY_RULE: dict[str, type[OcppError]] = {
    "required": OccurrenceConstraintViolation,
    "minItems": OccurrenceConstraintViolation,
    "maxItems": OccurrenceConstraintViolation,
    "type": TypeConstraintViolation,
    "maxLength": TypeConstraintViolation,
    "minLength": TypeConstraintViolation,
    "format": TypeConstraintViolation,
    "enum": PropertyConstraintViolation,
    "minimum": PropertyConstraintViolation,
    "maximum": PropertyConstraintViolation,
    "exclusiveMinimum": PropertyConstraintViolation,
    "exclusiveMaximum": PropertyConstraintViolation,
    "multipleOf": PropertyConstraintViolation,
    "pattern": PropertyConstraintViolation,
    "additionalProperties": FormatViolation,
}


@cache
def known_actions() -> frozenset[str]:
    """Every OCPP 2.0.1 action name, in either direction."""
    names = (entry.name for entry in resources.files(_SCHEMA_PACKAGE).iterdir())
    return frozenset(
        name.removesuffix("Request.json") for name in names if name.endswith("Request.json")
    )


@cache
def _validator(action: str, kind: str) -> Validator:
    text = resources.files(_SCHEMA_PACKAGE).joinpath(f"{action}{kind}.json").read_text("utf-8")
    compiled: Validator = fastjsonschema.compile(json.loads(text))
    return compiled


def compile_validators(requests: Iterable[str] = (), responses: Iterable[str] = ()) -> None:
    """Compile these actions' schemas now. Compiling one takes from a few to over 100 ms, which
    on first use would stall everything the process serves."""
    for action in requests:
        _validator(action, "Request")
    for action in responses:
        _validator(action, "Response")


def validate_request(action: str, payload: dict[str, Any]) -> None:
    """Raise the OcppError that matches the first schema violation of a CALL payload."""
    _validate(_validator(action, "Request"), payload)


def validate_response(action: str, payload: dict[str, Any]) -> None:
    """Raise the OcppError that matches the first schema violation of a CALLRESULT payload."""
    _validate(_validator(action, "Response"), payload)


def _validate(validator: Validator, payload: dict[str, Any]) -> None:
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        error_class = _ERROR_BY_RULE.get(exc.rule or "", FormatViolation)
        field = ".".join(str(part) for part in (exc.path or [])[1:])
        details = {"field": field} if field else {}
        message = re.sub(r"^data\.? ?", "" if field else "payload ", exc.message).strip()
        raise error_class(message, details) from None
