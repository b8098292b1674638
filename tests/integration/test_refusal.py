"""A picture that is not a brain MRI slice ends as "not a brain MRI slice", never with a label.

Real parts: the live site, Redis, a Celery worker process and a model artefact whose
guard refuses colour pictures (the tiny test artefact's plain checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.test import Client

from ml import outliers
from predictions.models import Job, Prediction
from tests.images import encode
from tests.integration.conftest import poll_until_finished, submit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_screenshot_is_refused_as_not_a_brain_mri_slice_in_the_api_and_the_portal(
    site: str, caller: Any, start_worker: Any
) -> None:
    start_worker()
    screenshot = encode(outliers.screenshot(np.random.default_rng(7), 300), "PNG")
    job = submit(site, caller, image=screenshot)
    body = poll_until_finished(caller[0], job["url"], timeout_s=60)

    assert body["status"] == "failed", body
    assert body["failure_code"] == "not_brain_mri"
    assert body["error"].startswith("not a brain MRI slice"), body["error"]
    assert "colour" in body["error"]
    assert body["result"] is None
    assert not Prediction.objects.filter(job__public_id=job["id"]).exists()

    retried = caller[0].post(f"{job['url']}retry/", timeout=10)
    assert retried.status_code == 400, retried.text  # the same image would get the same answer

    portal = Client()
    portal.force_login(Job.objects.get(public_id=job["id"]).scan.uploaded_by)
    page = portal.get(f"/jobs/{job['id']}/").content.decode()
    assert "Not a brain MRI slice" in page
    assert "not a brain MRI slice: it is a colour picture" in page
    assert "Retry this scan" not in page
    for label in ("Glioma", "Meningioma", "Pituitary"):
        assert label not in page
