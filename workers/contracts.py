"""The whole interface between the site and the workers.

Task arguments stay opaque (a job id and a contract version): the broker, Flower
and logs show them in plain text, so no patient name, birth date or file name
ever travels there. The worker fetches the image over authenticated HTTP.

This module is the one definition of what crosses the seam: the class labels,
the request, the result, the failure report and its codes. The site imports it
(it is standard library only); `ml` cannot, so `tests/test_contracts_agree.py`
ties `ml.labels.CLASS_NAMES` to `LABELS`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from enum import StrEnum

CONTRACT_VERSION = 3
# Version 1 had no `needs_review` on results and no `failure_code` on failures. Messages of
# version 1 still in flight during an upgrade are accepted on both sides; what the
# site assumes for their missing fields is in docs/operations.md. Version 3 added the bulk
# endpoints (start many jobs, post many outcomes in one request); results and failures
# kept their shape, and the per-job endpoints stay for workers of versions 1 and 2.
ACCEPTED_VERSIONS: tuple[int, ...] = (1, 2, 3)
# What task messages carry. The request has not changed since version 2, so the site keeps
# sending 2: workers of version 2 still serve what an upgraded site queues during a rollout.
REQUEST_VERSION = 2
# The most items one bulk request may carry (start or outcomes); the site answers 400 above it.
MAX_BULK_ITEMS = 256
TASK_NAME = "workers.predict_scan"
LABELS: tuple[str, ...] = ("glioma", "meningioma", "no_tumor", "pituitary")

JsonValue = str | int | float | bool | None | dict[str, float]


class FailureCode(StrEnum):
    """Why a job ended without a result; the free-text reason beside it is for people."""

    INVALID_IMAGE = "invalid_image"  # the worker could not decode the image
    NOT_BRAIN_MRI = "not_brain_mri"  # the model's guard: outside what it answers
    TIMEOUT = "timeout"  # over the task's soft time limit
    GAVE_UP = "gave_up"  # the site's sweeper: no worker finished it in time
    CONTRACT = "contract"  # a message of a contract version the other side does not speak
    WORKER_ERROR = "worker_error"  # any other failure a worker reported


# Outcomes a retry cannot change: the same image gets the same answer.
FINAL_FAILURES: frozenset[FailureCode] = frozenset({FailureCode.NOT_BRAIN_MRI})


class ContractError(ValueError):
    """A message that does not follow a contract version this side speaks."""


def check_version(version: int, side: str) -> int:
    """Return `version` if `side` (the worker, the site) accepts it; raise ContractError if not."""
    if version not in ACCEPTED_VERSIONS:
        accepted = ", ".join(str(v) for v in ACCEPTED_VERSIONS)
        raise ContractError(
            f"contract version {version} is not supported (this {side} speaks {accepted})"
        )
    return version


@dataclass(frozen=True)
class PredictionRequest:
    job_id: str
    version: int = REQUEST_VERSION

    def task_kwargs(self) -> dict[str, str | int]:
        return {"job_id": self.job_id, "contract_version": self.version}

    @classmethod
    def from_task_kwargs(cls, job_id: str, contract_version: int) -> PredictionRequest:
        # Versions 2 and 3 changed only reports, so a request of any accepted version is the same.
        return cls(job_id=job_id, version=check_version(contract_version, "worker"))


@dataclass(frozen=True)
class PredictionResult:
    """What a worker reports for a classified scan; the site stores it as a `Prediction`."""

    job_id: str
    label: str
    probabilities: dict[str, float]
    model_version: str
    inference_ms: float
    worker: str
    # The model's own decision rule (a threshold in the artefact's metadata).
    needs_review: bool
    # A transparent RGBA layer with the original image's proportions, drawn over it as is
    # (`ml.inference.heatmap_layer_png`). Workers before it sent an opaque blend of the
    # cropped model input, which the portal shows beside the scan, never over it.
    heatmap_png: bytes | None = field(default=None, repr=False)
    version: int = CONTRACT_VERSION

    def to_json(self) -> dict[str, JsonValue]:
        body: dict[str, JsonValue] = asdict(self)
        del body["job_id"]  # carried by the URL
        body["heatmap_png"] = (
            base64.b64encode(self.heatmap_png).decode("ascii") if self.heatmap_png else None
        )
        return body


@dataclass(frozen=True)
class FailureReport:
    """What a worker reports for a job that ended without a result."""

    job_id: str
    failure_code: FailureCode
    reason: str
    worker: str = ""
    version: int = CONTRACT_VERSION

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "failure_code": self.failure_code.value,
            "reason": self.reason,
            "worker": self.worker,
            "version": self.version,
        }
