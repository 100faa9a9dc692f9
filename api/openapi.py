"""The OpenAPI document says what the app really answers on error: RFC 9457 problem+json.

FastAPI documents every 422 as ``application/json`` with its own ``HTTPValidationError`` body, and no
other error at all; ours are ``application/problem+json`` bodies (api/problems.py) for every 4xx/5xx.
A client generated from the document, or a schema-driven fuzzer (tests/api/test_schemathesis.py),
would otherwise take every error for a contract violation.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.problems import MEDIA_TYPE

PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "An RFC 9457 problem; `code` is stable (clients switch on it), `type` ends with it.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

_PROBLEM_CONTENT = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def document_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe every error response (the 422s, the documented 4xx/5xx and a
    default) as problem+json."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Request does not match the schema",
                                        "content": _PROBLEM_CONTENT}
                for status, response in responses.items():
                    if status[0] in "45" and not response.get("content"):
                        response["content"] = _PROBLEM_CONTENT
                responses.setdefault("default", {"description": "Error", "content": _PROBLEM_CONTENT})
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
