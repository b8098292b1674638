from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


def exclude_internal_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """Keep the worker-only endpoints out of the public OpenAPI document."""
    return [endpoint for endpoint in endpoints if "/internal/" not in endpoint[0]]


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Document `Authorization: Token <key>` (registered by importing this module: apps.py)."""

    target_class = "predictions.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # The header's keyword, the same as DRF's tokens used: existing clients keep working.
        keyword = self.target.authenticate_header(None)
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=keyword
        )
