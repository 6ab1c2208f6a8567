"""Checks an answer against its generated schema (``api.openapi.answer_schemas``): the
tests' hand-made answers are the same types the reader returns and the API serves."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.document import openapi_spec

SPEC_URI = "urn:openapi"
T = TypeVar("T")


@functools.cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(openapi_spec(),
                                                                     default_specification=DRAFT202012))


def answer_errors(schema: str, value: Any) -> list[str]:
    """What is wrong with ``value`` as a ``schema`` (a name in components.schemas), as JSON."""
    validator = jsonschema.Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema}"},
                                                registry=_registry())
    as_json = json.loads(json.dumps(value))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(as_json)]


def checked(schema: str, value: T) -> T:
    """``value`` if it is a valid ``schema``, else AssertionError naming what is wrong."""
    problems = answer_errors(schema, value)
    assert not problems, f"not a {schema}: {problems[:5]}"
    return value
