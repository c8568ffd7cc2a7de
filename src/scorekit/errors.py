"""Errors that carry the HTTP status and the vLLM error `type` they map to.

The scoring layer raises these; the server turns them into `{"error": {message, type, param, code}}` and the
offline API lets them propagate (they subclass ValueError, as vLLM's VLLMValidationError does).
"""

from __future__ import annotations


class ScoreKitError(Exception):
    status_code = 500
    error_type = "InternalServerError"

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class ValidationError(ScoreKitError, ValueError):
    """400 BadRequestError. With `parameter`/`value` the message gets vLLM's ` (parameter=P, value=V)` suffix."""

    status_code = 400
    error_type = "BadRequestError"

    def __init__(self, message: str, parameter: str | None = None, value: object = None, param: str | None = None):
        if parameter is not None:
            message = f"{message} (parameter={parameter}, value={value})"
        super().__init__(message, param=param)
        self.parameter = parameter
        self.value = value


class TooLarge(ScoreKitError):
    """413: a request over one of the server's limits; the message names the flag that sets it."""

    status_code = 413
    error_type = "RequestEntityTooLarge"


class ShuttingDown(ScoreKitError):
    """503: the server is stopping (SIGTERM) and this request ran past its --timeout-graceful-shutdown."""

    status_code = 503
    error_type = "ServiceUnavailableError"


class ModelNotFound(ScoreKitError, LookupError):
    """404 NotFoundError: a request named a model this server does not serve."""

    status_code = 404
    error_type = "NotFoundError"


class ModelLoadError(ScoreKitError, OSError):
    """A model could not be found or loaded (start-up error, never an HTTP response)."""


class UnsupportedTask(ScoreKitError, NotImplementedError, ValueError):
    """501: the served model does not support this API (e.g. generative scoring on an encoder). A ValueError
    too, as vLLM raises for it offline."""

    status_code = 501
    error_type = "NotImplementedError"
