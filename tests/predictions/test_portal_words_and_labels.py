"""Accessibility and words that can be checked without a browser: ids that exist, distinct
link names, titles that say what and whom, one vocabulary."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from tests.factories import JobFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def test_every_aria_describedby_points_at_an_element_on_the_page(
    portal: Client, prediction: Any
) -> None:
    for url in ("/patients/new/", f"/jobs/{prediction.job.public_id}/"):
        page = portal.get(url).content.decode()
        described = re.findall(r'aria-describedby="([^"]+)"', page)
        assert described, url
        for ids in described:
            for element_id in ids.split():
                assert f'id="{element_id}"' in page, f"{url}: no element with id {element_id}"


def test_the_links_of_a_patients_results_have_distinct_names(portal: Client, patient: Any) -> None:
    for _ in range(3):
        JobFactory(scan__patient=patient, scan__original_name="same-second.png")
    page = portal.get(f"/patients/{patient.public_id}/").content.decode()
    names = re.findall(r'<a href="/jobs/[^"]+/">(.*?)</a>', page)
    assert len(names) == 3 and len(set(names)) == 3, names


def test_page_titles_say_what_and_whom(portal: Client, prediction: Any) -> None:
    job = prediction.job
    page = portal.get(f"/jobs/{job.public_id}/").content.decode()
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "Result of" in title and job.scan.patient.external_id in title


def test_people_read_one_vocabulary(portal: Client, patient: Any) -> None:
    PredictionFactory(
        job__scan__patient=patient,
        label="no_tumor",
        probabilities={"glioma": 0.1, "meningioma": 0.1, "no_tumor": 0.7, "pituitary": 0.1},
    )
    page = portal.get(f"/patients/{patient.public_id}/").content.decode()
    assert "No tumour" in page and ">no_tumor<" not in page and "No Tumor" not in page
    assert ">succeeded<" in page and ">done<" not in page
