"""The worker's only channel to the site: authenticated HTTP to the internal job endpoints.

Errors come back as `SiteError(permanent=...)`: a dropped connection or a 5xx may
succeed later and is retried; a 4xx will not and is not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from workers.contracts import FailureReport, JsonValue, PredictionResult
from workers.env import env_secret, env_str

DEFAULT_TIMEOUT_S = 30.0


class SiteError(Exception):
    """The site did not take a request; `status_code` is None when it never answered."""

    def __init__(self, message: str, permanent: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


@dataclass(frozen=True)
class ModelRelease:
    """The model version the site serves, and the digest of its archive."""

    version: str
    sha256: str
    size: int


@dataclass(frozen=True)
class StartAnswer:
    proceed: bool
    attempt: int


class SiteClient:
    def __init__(self, site_url: str, secret: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not site_url.startswith(("http://", "https://")):
            raise ValueError(f"SITE_URL must be an http(s) URL, got {site_url!r}")
        if not secret:
            raise ValueError("WORKER_SECRET must be set")
        self.internal = site_url.rstrip("/") + "/api/v1/internal/"
        self.base = self.internal + "jobs/"
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Worker {secret}"

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] = os.environ, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> SiteClient:
        """Raise ConfigError (WORKER_SECRET_FILE unreadable) or ValueError (missing values)."""
        site_url = env_str("SITE_URL", "", environ)
        secret = env_secret("WORKER_SECRET", required=False, environ=environ)
        return cls(site_url, secret, timeout_s=timeout_s)

    def start(self, job_id: str, worker: str) -> StartAnswer:
        body = self._request("POST", f"{job_id}/start/", {"worker": worker}).json()
        return StartAnswer(proceed=bool(body["proceed"]), attempt=int(body.get("attempt", 0)))

    def fetch_image(self, job_id: str) -> bytes:
        return self._request("GET", f"{job_id}/image/").content

    def post_result(self, result: PredictionResult) -> bool:
        response = self._request("POST", f"{result.job_id}/result/", result.to_json())
        return bool(response.json()["recorded"])

    def post_failure(self, report: FailureReport) -> bool:
        response = self._request("POST", f"{report.job_id}/failure/", report.to_json())
        return bool(response.json()["recorded"])

    def active_model(self) -> ModelRelease:
        body = self._request("GET", self.internal + "models/active/").json()
        return ModelRelease(str(body["version"]), str(body["sha256"]), int(body["size"]))

    def download_model(self, version: str, destination: Path) -> None:
        """Stream the archive of `version` into `destination` (the caller checks its digest)."""
        url = f"{self.internal}models/{version}/archive/"
        response = self._request("GET", url, stream=True)
        try:
            with open(destination, "wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    handle.write(chunk)
        except requests.RequestException as exc:
            raise SiteError(f"GET {url}: {exc}", permanent=False) from exc
        finally:
            response.close()

    def report_model_state(self, state: Mapping[str, JsonValue]) -> None:
        self._request("POST", self.internal + "models/state/", state)

    def check(self) -> None:
        """Prove the site answers and accepts our secret (a 404 for a made-up job does both)."""
        try:
            self._request("GET", "00000000-0000-0000-0000-000000000000/image/")
        except SiteError as exc:
            if exc.status_code != 404:
                raise

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, JsonValue] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """`path` is relative to the job endpoints, or a full URL."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        try:
            response = self.session.request(
                method, url, json=body, timeout=self.timeout_s, stream=stream
            )
        except requests.RequestException as exc:
            raise SiteError(f"{method} {url}: {exc}", permanent=False) from exc
        if response.status_code >= 400:
            permanent = response.status_code < 500 and response.status_code != 429
            detail = response.text[:300]
            message = f"{method} {url}: HTTP {response.status_code} {detail}"
            raise SiteError(message, permanent, status_code=response.status_code)
        return response
