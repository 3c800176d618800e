"""The JSON API (django-ninja): one error shape everywhere, {"code", "message"} plus "fields"."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.types import DictStrAny

from backstop.lib import site_messages
from backstop.lib.errors import InvalidInput
from backstop.ratelimits.services import RateLimited

log = logging.getLogger(__name__)


class UnsupportedMediaType(ValueError):
    """A body not declared as JSON.

    A page on another site can make a visitor's browser send a form or plain text here without asking first (a JSON
    content type it cannot send without our leave), so reading such a body would let that page sign the visitor in to
    an account of its choosing.
    """


class JsonObjectParser(Parser):
    """A body is one JSON object of real text: anything else is unreadable, not a set of missing fields."""

    def parse_body(self, request: HttpRequest) -> DictStrAny:
        if request.content_type != "application/json":
            raise UnsupportedMediaType(request.content_type)  # ninja wraps it in a 400 HttpError; see on_http_error
        data = super().parse_body(request)
        if not isinstance(data, dict):
            raise ValueError("the request body is not a JSON object")  # ninja answers 400: malformed_request
        # A "\ud800" escape decodes to half a surrogate pair, which no database driver can store or query.
        json.dumps(data, ensure_ascii=False).encode()
        return data


# What any operation can answer besides what its route declares: the handlers below answer them all in the error shape.
ANSWERS_OF_EVERY_OPERATION = {"500": "Internal Server Error: something failed on our side (the body has a reference)"}
ANSWERS_OF_EVERY_INPUT = {"400": "Bad Request: a parameter or the body is not what the operation takes"}
ANSWERS_OF_EVERY_BODY = {"415": "Unsupported Media Type: the body was not sent as application/json"}


class BackstopApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: DictStrAny | None = None) -> Any:
        """The routes' schema, with the answers every operation (or every one that takes a body) can give: a client
        generated from it, or a fuzzer checking it, learns of every status code the API can answer."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answers = operation.setdefault("responses", {})
                body = "requestBody" in operation
                extra = {**ANSWERS_OF_EVERY_OPERATION, **(ANSWERS_OF_EVERY_BODY if body else {}),
                         **(ANSWERS_OF_EVERY_INPUT if body or operation.get("parameters") else {})}
                declared = {str(status) for status in answers}  # ninja keys them by int until it writes JSON
                for status, description in extra.items():
                    if status not in declared:
                        answers[int(status)] = {"description": description, "content": error}
        return schema


api = BackstopApi(title="Backstop", version="1", docs_url="/docs", openapi_url="/openapi.json", urls_namespace="api",
                  parser=JsonObjectParser())


def error_response(request: HttpRequest, status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message, **extra}, status=status)


def _field_name(loc: list[Any] | tuple[Any, ...]) -> str:
    # ninja locations look like ("body", "payload", "email"); the field is the last named part.
    names = [str(part) for part in loc if part not in ("body", "payload", "query", "path")]
    return ".".join(names) or "body"


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields: dict[str, str] = {}
    for error in exc.errors:
        name = _field_name(error.get("loc", ()))
        if error.get("type") == "missing":
            fields.setdefault(name, "This field is required.")
        else:
            fields.setdefault(name, str(error.get("msg", "This value is not valid.")))
    if set(fields) == {"body"} or not fields:
        return error_response(request, 400, "malformed_request", site_messages.MALFORMED_REQUEST.text)
    return error_response(request, 400, "invalid_input", site_messages.INVALID_INPUT.text, fields=fields)


@api.exception_handler(InvalidInput)
def on_invalid_input(request: HttpRequest, exc: InvalidInput) -> HttpResponse:
    return error_response(request, 400, "invalid_input", site_messages.INVALID_INPUT.text, fields=exc.errors)


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error_response(request, 400, "body_too_large", site_messages.BODY_TOO_LARGE.text)


@api.exception_handler(RateLimited)
def on_rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    text = (exc.notice or site_messages.RATE_LIMITED).text.format(minutes=exc.minutes)
    response = error_response(request, 429, "rate_limited", text, retry_after=exc.retry_after)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(AuthenticationError)
def on_not_signed_in(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "not_signed_in", site_messages.NOT_SIGNED_IN.text)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, UnsupportedMediaType):
        return error_response(request, 415, "unsupported_media_type", site_messages.UNSUPPORTED_MEDIA_TYPE.text)
    if exc.status_code == 400:
        return error_response(request, 400, "malformed_request", site_messages.MALFORMED_REQUEST.text)
    if exc.status_code == 403:  # ninja's session auth, on a missing or wrong CSRF token (our code raises no 403)
        return error_response(request, 403, "csrf_failed", site_messages.CSRF_FAILED.text)
    return error_response(request, exc.status_code, "error", str(exc))


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    reference = uuid.uuid4().hex[:12]
    log.exception("unhandled API error, reference %s", reference)
    return error_response(request, 500, "internal_error", site_messages.UNEXPECTED.text, reference=reference)


def _mount_routers() -> None:
    from backstop.accounts.api import router as accounts_router
    from backstop.billing.api import router as billing_router
    from backstop.drafts.api import router as drafts_router
    from backstop.support.api import router as support_router

    api.add_router("", accounts_router)
    api.add_router("/support", support_router)
    api.add_router("", billing_router)
    api.add_router("/drafts", drafts_router)


_mount_routers()
