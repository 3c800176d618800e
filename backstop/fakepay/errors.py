"""Errors in Stripe's wire shape, so the official SDK raises the same exception classes it would for Stripe.

The SDK chooses its exception from the HTTP status and ``error.type``: 400/404 give InvalidRequestError,
400 with ``idempotency_error`` gives IdempotencyError, 401 AuthenticationError, 402 CardError, 5xx APIError.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request that fails with a Stripe-shaped error body.

    By default the request's database changes are rolled back and the response is not kept for
    idempotent replay, matching Stripe, which saves no result for requests rejected before they run.
    """

    keeps_changes = False

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


class CardError(ApiError):
    """A declined payment: the attempt happened, so its state change (and its event) is committed and the
    402 response is replayed for a repeated idempotency key, as Stripe does."""

    keeps_changes = True

    def __init__(self, message: str, *, code: str, decline_code: str, extra: dict[str, Any]) -> None:
        super().__init__(
            402,
            message,
            error_type="card_error",
            code=code,
            extra={"decline_code": decline_code, **extra},
        )


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def no_such(kind: str, object_id: str, *, param: str, status: int = 404) -> ApiError:
    """Stripe answers 404 for a missing object in the URL and 400 for a missing object named in a parameter."""
    return ApiError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
