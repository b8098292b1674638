"""Unit tests of the task's decisions, with the site client and the model mocked at the boundary."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded

from ml.errors import InvalidImageError, NotBrainMRIError
from ml.inference import Classification, Explanation
from ml.preprocessing import Geometry
from workers import tasks
from workers.contracts import FailureCode, FailureReport, PredictionResult
from workers.web_client import SiteClient, SiteError, StartAnswer

JOB_ID = "5b0c43aa-1111-4222-8333-444455556666"
CLASSIFICATION = Classification(
    label="pituitary",
    probabilities={"glioma": 0.1, "meningioma": 0.1, "no_tumor": 0.1, "pituitary": 0.7},
    model_version="m-3",
    inference_ms=4.0,
    needs_review=True,
)


@pytest.fixture
def client() -> Any:
    client = mock.create_autospec(SiteClient, instance=True)
    client.start.return_value = StartAnswer(proceed=True, attempt=1)
    client.fetch_image.return_value = b"image bytes"
    return client


@pytest.fixture
def engine() -> Any:
    with mock.patch.object(tasks.model_loader, "current_engine", autospec=True) as current:
        geometry = Geometry((4, 4), (4, 4), (0, 0, 4, 4), 4, (0, 0))
        explanation = Explanation(np.zeros((4, 4), np.float32), geometry, layer_png=b"\x89PNG")
        current.return_value.explain.return_value = (CLASSIFICATION, explanation)
        yield current.return_value


def test_posts_the_models_result_with_the_worker_and_version(client: Any, engine: Any) -> None:
    assert tasks.run_job(client, JOB_ID, 2, "cpu@a") == "succeeded"
    engine.explain.assert_called_once_with(b"image bytes")
    client.post_result.assert_called_once_with(
        PredictionResult(
            job_id=JOB_ID,
            label="pituitary",
            probabilities=CLASSIFICATION.probabilities,
            model_version="m-3",
            inference_ms=4.0,
            worker="cpu@a",
            needs_review=True,
            heatmap_png=b"\x89PNG",
        )
    )


def test_a_version_1_request_still_in_the_queue_is_served(client: Any, engine: Any) -> None:
    assert tasks.run_job(client, JOB_ID, 1, "cpu@a") == "succeeded"
    client.post_result.assert_called_once()


def test_does_nothing_for_a_job_that_already_finished(client: Any, engine: Any) -> None:
    client.start.return_value = StartAnswer(proceed=False, attempt=0)
    assert tasks.run_job(client, JOB_ID, 1, "cpu@a") == "already finished"
    client.fetch_image.assert_not_called()
    engine.explain.assert_not_called()


def test_an_undecodable_image_fails_the_job_with_the_reason(client: Any, engine: Any) -> None:
    engine.explain.side_effect = InvalidImageError("truncated or corrupt image")
    assert tasks.run_job(client, JOB_ID, 1, "cpu@a") == "failed"
    client.post_failure.assert_called_once_with(
        FailureReport(
            JOB_ID,
            FailureCode.INVALID_IMAGE,
            "The image cannot be classified: truncated or corrupt image",
            "cpu@a",
        )
    )
    client.post_result.assert_not_called()


def test_an_image_the_guard_refuses_is_reported_as_not_a_brain_mri(
    client: Any, engine: Any
) -> None:
    engine.explain.side_effect = NotBrainMRIError("looks like a photograph, not an MRI slice")
    assert tasks.run_job(client, JOB_ID, 2, "cpu@a") == "not a brain MRI"
    client.post_failure.assert_called_once_with(
        FailureReport(
            JOB_ID,
            FailureCode.NOT_BRAIN_MRI,
            "looks like a photograph, not an MRI slice",
            "cpu@a",
        )
    )
    client.post_result.assert_not_called()


def test_a_message_of_another_contract_version_fails_the_job(client: Any, engine: Any) -> None:
    assert tasks.run_job(client, JOB_ID, 7, "cpu@a") == "failed"
    report = client.post_failure.call_args.args[0]
    assert report.failure_code == FailureCode.CONTRACT
    assert "contract version 7" in report.reason
    client.start.assert_not_called()


@pytest.mark.parametrize(("retries", "delay"), [(0, 10), (1, 20), (3, 80), (10, 300)])
def test_an_unreachable_site_is_retried_with_a_doubling_capped_backoff(
    client: Any, engine: Any, retries: int, delay: int
) -> None:
    client.start.side_effect = SiteError("connection refused", permanent=False)
    tasks.predict_scan.push_request(retries=retries)
    try:
        with (
            mock.patch.object(tasks, "site_client", return_value=client),
            mock.patch.object(tasks.predict_scan, "retry", side_effect=Retry()) as retry,
            pytest.raises(Retry),
        ):
            tasks.predict_scan.run(job_id=JOB_ID, contract_version=2)
    finally:
        tasks.predict_scan.pop_request()
    assert retry.call_args.kwargs["countdown"] == delay
    assert retry.call_args.kwargs["exc"] is client.start.side_effect


def test_a_refusal_by_the_site_is_not_retried(client: Any, engine: Any) -> None:
    client.start.side_effect = SiteError("HTTP 404", permanent=True)
    with (
        mock.patch.object(tasks, "site_client", return_value=client),
        mock.patch.object(tasks.predict_scan, "retry", autospec=True) as retry,
    ):
        assert tasks.predict_scan.run(job_id=JOB_ID, contract_version=2) == "refused"
    retry.assert_not_called()


def test_a_job_over_the_soft_time_limit_fails_with_a_reason(client: Any, engine: Any) -> None:
    engine.explain.side_effect = SoftTimeLimitExceeded()
    with mock.patch.object(tasks, "site_client", return_value=client):
        assert tasks.predict_scan.run(job_id=JOB_ID, contract_version=2) == "failed"
    report = client.post_failure.call_args.args[0]
    assert report.failure_code == FailureCode.TIMEOUT
    assert "longer than the" in report.reason


def test_running_out_of_time_waiting_for_the_site_is_retried_not_failed(
    client: Any, engine: Any
) -> None:
    # A link between clouds stalls mid-download: the scan was never classified.
    client.fetch_image.side_effect = SoftTimeLimitExceeded()
    with (
        mock.patch.object(tasks, "site_client", return_value=client),
        mock.patch.object(tasks.predict_scan, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        tasks.predict_scan(job_id=JOB_ID, contract_version=2)
    client.post_failure.assert_not_called()
    assert isinstance(retry.call_args.kwargs["exc"], SiteError)
    assert not retry.call_args.kwargs["exc"].permanent
