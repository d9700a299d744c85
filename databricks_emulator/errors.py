"""Databricks-shaped API errors: `{"error_code": ..., "message": ...}` with an HTTP status."""

# The SDK picks its exception class from error_code first and the HTTP status second,
# so both must match what Databricks sends.
DEFAULT_ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


class ApiError(Exception):
    """Raised by a handler; the server turns it into a Databricks error response."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code or DEFAULT_ERROR_CODES.get(status, "INTERNAL_ERROR")
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}


def bad_request(message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> ApiError:
    return ApiError(400, message, error_code)


def not_found(message: str, error_code: str = "RESOURCE_DOES_NOT_EXIST") -> ApiError:
    return ApiError(404, message, error_code)
