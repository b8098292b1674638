from __future__ import annotations

import base64

import pytest

from workers.contracts import (
    ACCEPTED_VERSIONS,
    CONTRACT_VERSION,
    REQUEST_VERSION,
    ContractError,
    FailureCode,
    FailureReport,
    PredictionRequest,
    PredictionResult,
)


def test_a_request_round_trips_through_task_kwargs() -> None:
    request = PredictionRequest(job_id="abc")
    assert PredictionRequest.from_task_kwargs(**request.task_kwargs()) == request


def test_a_request_of_the_previous_version_is_still_accepted() -> None:
    assert ACCEPTED_VERSIONS == (1, 2, 3) and CONTRACT_VERSION == 3
    assert PredictionRequest.from_task_kwargs(job_id="abc", contract_version=1).version == 1


def test_tasks_carry_version_2_so_workers_of_version_2_serve_them_during_an_upgrade() -> None:
    assert REQUEST_VERSION == 2
    assert PredictionRequest(job_id="abc").task_kwargs()["contract_version"] == 2


def test_a_request_of_another_contract_version_is_refused() -> None:
    with pytest.raises(ContractError, match="contract version 7 is not supported"):
        PredictionRequest.from_task_kwargs(job_id="abc", contract_version=7)


def test_a_result_serialises_its_heatmap_as_base64_and_drops_the_job_id() -> None:
    result = PredictionResult(
        "abc", "glioma", {"glioma": 1.0}, "m", 1.0, "w", needs_review=True, heatmap_png=b"\x89PNG"
    )
    body = result.to_json()
    assert "job_id" not in body
    assert isinstance(body["heatmap_png"], str)
    assert base64.b64decode(body["heatmap_png"]) == b"\x89PNG"
    assert body["version"] == CONTRACT_VERSION
    assert body["needs_review"] is True


def test_a_failure_report_carries_its_code_and_version() -> None:
    report = FailureReport("abc", FailureCode.NOT_BRAIN_MRI, "a photograph", "cpu@a")
    assert report.to_json() == {
        "failure_code": "not_brain_mri",
        "reason": "a photograph",
        "worker": "cpu@a",
        "version": CONTRACT_VERSION,
    }
