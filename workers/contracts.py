"""The whole interface between the site and the workers.

Task arguments stay opaque (a job id and a contract version): the broker, Flower
and logs show them in plain text, so no patient name, birth date or file name
ever travels there. The worker fetches the image over authenticated HTTP.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

CONTRACT_VERSION = 1
TASK_NAME = "workers.predict_scan"
LABELS: tuple[str, ...] = ("glioma", "meningioma", "no_tumor", "pituitary")


class ContractError(ValueError):
    """A message that does not follow this contract version."""


@dataclass(frozen=True)
class PredictionRequest:
    job_id: str
    version: int = CONTRACT_VERSION

    def task_kwargs(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "contract_version": self.version}

    @classmethod
    def from_task_kwargs(cls, job_id: str, contract_version: int) -> PredictionRequest:
        if contract_version != CONTRACT_VERSION:
            raise ContractError(
                f"contract version {contract_version} is not supported "
                f"(this worker speaks {CONTRACT_VERSION})"
            )
        return cls(job_id=job_id, version=contract_version)


@dataclass(frozen=True)
class PredictionResult:
    job_id: str
    label: str
    probabilities: dict[str, float]
    model_version: str
    inference_ms: float
    worker: str
    heatmap_png: bytes | None = field(default=None, repr=False)
    version: int = CONTRACT_VERSION

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["job_id"]  # carried by the URL
        body["heatmap_png"] = (
            base64.b64encode(self.heatmap_png).decode("ascii") if self.heatmap_png else None
        )
        return body
