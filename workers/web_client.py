"""The worker's only channel to the site: authenticated HTTP to the internal job endpoints.

Errors come back as `SiteError(permanent=...)`: a dropped connection or a 5xx may
succeed later and is retried; a 4xx will not and is not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from workers.contracts import MAX_BULK_ITEMS, FailureReport, JsonValue, PredictionResult
from workers.env import env_secret, env_str

DEFAULT_TIMEOUT_S = 30.0
# Results carry heat maps (base64 PNG, tens to hundreds of kB): one outcomes request stays
# well under the site's request size limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 21 MiB by default).
BULK_MAX_BYTES = 8 * 1024 * 1024
# Connections kept to the site: above the batch's fetch threads (WORKER_FETCH_THREADS).
POOL_SIZE = 80


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
        # Batches fetch images in parallel and tasks report from their own threads.
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
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

    def start_many(self, job_ids: Sequence[str], worker: str) -> dict[str, StartAnswer | SiteError]:
        """Start (claim) many jobs in one request (contract 3); one answer per distinct id.

        A job the site does not know gets a permanent SiteError of its own; a failed request
        raises SiteError for them all.
        """
        answers: dict[str, StartAnswer | SiteError] = {}
        unique = list(dict.fromkeys(job_ids))
        for offset in range(0, len(unique), MAX_BULK_ITEMS):
            chunk = unique[offset : offset + MAX_BULK_ITEMS]
            body = self._bulk("start/", {"worker": worker, "jobs": chunk})
            for item in body["jobs"]:
                answers[str(item["id"])] = _start_answer(item)
        return answers

    def post_outcomes(
        self, results: Sequence[PredictionResult], failures: Sequence[FailureReport]
    ) -> dict[str, bool | SiteError]:
        """Post many results and failures (contract 3); per job: recorded, or why not.

        The items go in as few requests as the item and byte limits allow. A request
        that fails gives its own items its SiteError; the other requests still count.
        """
        items = [("results", r.job_id, _item(r.job_id, r.to_json())) for r in results] + [
            ("failures", f.job_id, _item(f.job_id, f.to_json())) for f in failures
        ]
        answers: dict[str, bool | SiteError] = {}
        for chunk in _chunks(items):
            body: dict[str, Any] = {"results": [], "failures": []}
            for kind, _, item in chunk:
                body[kind].append(item)
            try:
                answer = self._bulk("outcomes/", body)
            except SiteError as exc:
                answers.update({job_id: exc for _, job_id, _ in chunk})
                continue
            for item in [*answer["results"], *answer["failures"]]:
                answers[str(item["id"])] = _recorded(item)
        return answers

    def _bulk(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self._request("POST", path, body).json()
        except SiteError as exc:
            if exc.status_code == 404:
                # A site older than contract 3: the jobs wait (retried) until it is upgraded.
                message = f"{exc} (the site predates contract 3's bulk endpoints: upgrade it)"
                raise SiteError(message, permanent=False, status_code=404) from exc
            raise
        except ValueError as exc:
            raise SiteError(f"POST {path}: the answer is not JSON", permanent=False) from exc
        return answer

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


def _item(job_id: str, body: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    return {"id": job_id, **body}


def _chunks(
    items: list[tuple[str, str, dict[str, JsonValue]]],
) -> Iterator[list[tuple[str, str, dict[str, JsonValue]]]]:
    """Split outcome items into requests of at most MAX_BULK_ITEMS and about BULK_MAX_BYTES."""
    chunk: list[tuple[str, str, dict[str, JsonValue]]] = []
    size = 0
    for entry in items:
        item_size = len(json.dumps(entry[2]))
        if chunk and (len(chunk) == MAX_BULK_ITEMS or size + item_size > BULK_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += item_size
    if chunk:
        yield chunk


def _start_answer(item: Mapping[str, Any]) -> StartAnswer | SiteError:
    if "error" in item:
        return SiteError(f"start {item['id']}: {item['error']}", permanent=True, status_code=404)
    return StartAnswer(proceed=bool(item["proceed"]), attempt=int(item.get("attempt", 0)))


def _recorded(item: Mapping[str, Any]) -> bool | SiteError:
    if "error" in item:
        return SiteError(
            f"outcome of {item['id']}: {item['error']}", permanent=True, status_code=400
        )
    return bool(item["recorded"])
