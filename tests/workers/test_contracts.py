from __future__ import annotations

import base64

import pytest

from workers.contracts import ContractError, PredictionRequest, PredictionResult


def test_a_request_round_trips_through_task_kwargs() -> None:
    request = PredictionRequest(job_id="abc")
    assert PredictionRequest.from_task_kwargs(**request.task_kwargs()) == request


def test_a_request_of_another_contract_version_is_refused() -> None:
    with pytest.raises(ContractError, match="contract version 2 is not supported"):
        PredictionRequest.from_task_kwargs(job_id="abc", contract_version=2)


def test_a_result_serialises_its_heatmap_as_base64_and_drops_the_job_id() -> None:
    result = PredictionResult("abc", "glioma", {"glioma": 1.0}, "m", 1.0, "w", b"\x89PNG")
    body = result.to_json()
    assert "job_id" not in body
    assert base64.b64decode(body["heatmap_png"]) == b"\x89PNG"
    assert body["version"] == 1
