"""Request-body limits, enforced before the body is read, and as it streams in.

A request that says it is too big (Content-Length) is refused before one byte of its body
is read; a file part that grows past MAX_UPLOAD_BYTES while it streams stops the parse
then, so neither memory nor the temporary folder ever holds more than the limit. A
chunked body (no Content-Length) is refused: Django's WSGI handler would read it as
empty. The documented production set-up puts nginx in front, which buffers the whole body
and passes it on with a Content-Length (deploy/nginx/nginx.conf).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from rest_framework import status
from rest_framework.exceptions import APIException

BODY_METHODS = {"POST", "PUT", "PATCH"}


class RequestTooLarge(APIException):
    """413: the body is, or has grown, over the limit. DRF renders it in API views."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = (
        "Send the body with a Content-Length header: chunked transfer encoding is not accepted."
    )
    default_code = "length_required"


def max_request_bytes() -> int:
    """The largest body accepted: one file at MAX_UPLOAD_BYTES plus the form around it."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class RequestSizeLimitMiddleware:
    """Refuse an oversized or chunked body before anything reads it (place it before CSRF)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method in BODY_METHODS and (refusal := self._refusal(request)):
            return _error_response(request, refusal)
        return self.get_response(request)

    def _refusal(self, request: HttpRequest) -> APIException | None:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return LengthRequired()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads a malformed length as an empty body.
        limit = max_request_bytes()
        if length > limit:
            return RequestTooLarge(
                f"The request is {length:,} bytes; the limit is {limit:,} bytes "
                f"(an image of at most {settings.MAX_UPLOAD_BYTES:,} bytes and its form)."
            )
        return None

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponseBase | None:
        """Answer a file that grew too large while a portal view read the form."""
        if isinstance(exc, RequestTooLarge):
            return _error_response(request, exc)
        return None


def _error_response(request: HttpRequest, error: APIException) -> HttpResponseBase:
    """JSON for API clients and the portal's uploader, a page for a browser's navigation."""
    message = str(error.detail)
    response: HttpResponse
    if "text/html" in request.META.get("HTTP_ACCEPT", ""):
        template = "predictions/request_refused.html"
        response = render(request, template, {"message": message}, status=error.status_code)
    else:
        response = JsonResponse({"detail": message, "errors": [message]}, status=error.status_code)
    # Sent before CommonMiddleware would add it: a client that stopped sending reads a length.
    response["Content-Length"] = str(len(response.content))
    return response


class SizeLimitedUploadHandler(FileUploadHandler):
    """Count each file's bytes as they arrive; raise `RequestTooLarge` past MAX_UPLOAD_BYTES.

    First in FILE_UPLOAD_HANDLERS, so the memory and temporary-file handlers after it never
    receive a byte over the limit.
    """

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        limit = settings.MAX_UPLOAD_BYTES
        if start + len(raw_data) > limit:
            raise RequestTooLarge(f"The file is over the limit of {limit:,} bytes.")
        return raw_data

    def file_complete(self, file_size: int) -> Any:
        return None  # The next handler builds the file.
