from __future__ import annotations

from typing import Any


def exclude_internal_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """Keep the worker-only endpoints out of the public OpenAPI document."""
    return [endpoint for endpoint in endpoints if "/internal/" not in endpoint[0]]
