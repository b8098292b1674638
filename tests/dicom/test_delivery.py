"""Results back to the PACS: when a study is due, real C-STORE and STOW-RS peers, retries."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage
from pynetdicom import AE, StoragePresentationContexts, evt

from dicom import delivery
from dicom.models import PacsConnection, Study
from dicom.studies import slice_outcomes
from predictions.models import Job
from tests.api import submit
from tests.dicom_files import mr_dataset, picture, to_bytes
from webapp.local_redis import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_settling(settings: Any) -> None:
    settings.DICOM_STUDY_SETTLE_S = 0


@pytest.fixture
def storage_scp() -> Iterator[tuple[int, list[Dataset]]]:
    """A real DICOM storage service (pynetdicom) on a free port; yields (port, received)."""
    received: list[Dataset] = []

    def store(event: Any) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        received.append(dataset)
        return 0x0000

    entity = AE(ae_title="TESTPACS")
    entity.supported_contexts = StoragePresentationContexts
    port = free_port()
    server = entity.start_server(("127.0.0.1", port), block=False,
                                 evt_handlers=[(evt.EVT_C_STORE, store)])  # fmt: skip
    yield port, received
    server.shutdown()


@pytest.fixture
def http_pacs() -> Iterator[tuple[str, list[int]]]:
    """A web server that answers every POST with the status at the head of `statuses`."""
    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", statuses
    server.shutdown()


def dimse(organisation: Any, port: int) -> PacsConnection:
    return PacsConnection.objects.create(
        organisation=organisation, protocol="dimse", host="127.0.0.1", port=port,
        called_ae_title="TESTPACS",
    )  # fmt: skip


def dicomweb(organisation: Any, url: str) -> PacsConnection:
    return PacsConnection.objects.create(organisation=organisation, protocol="dicomweb", url=url)


def refreshed(study: Study) -> Study:
    study.refresh_from_db()
    return study


def test_a_finished_study_goes_to_the_pacs_by_c_store(
    finished_study: Study, storage_scp: tuple[int, list[Dataset]]
) -> None:
    port, received = storage_scp
    dimse(finished_study.organisation, port)
    assert delivery.deliver_due() == (1, 0)
    study = refreshed(finished_study)
    assert study.delivery_status == "sent" and study.delivered_at is not None
    assert study.delivery_attempts == 1
    assert sorted(ds.SOPClassUID for ds in received) == sorted(
        [ComprehensiveSRStorage, SecondaryCaptureImageStorage]
    )
    assert {ds.StudyInstanceUID for ds in received} == {study.study_instance_uid}
    assert delivery.deliver_due() == (0, 0)  # sent once


def test_a_study_still_processing_waits(
    finished_study: Study, storage_scp: tuple[int, list[Dataset]]
) -> None:
    port, received = storage_scp
    dimse(finished_study.organisation, port)
    job = slice_outcomes(finished_study)[0].job
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    assert delivery.deliver_due() == (0, 1)
    study = refreshed(finished_study)
    assert study.delivery_status == "pending" and study.delivery_attempts == 0
    assert received == []


def test_a_study_waits_until_it_has_settled(
    finished_study: Study, storage_scp: tuple[int, list[Dataset]], settings: Any
) -> None:
    settings.DICOM_STUDY_SETTLE_S = 60
    dimse(finished_study.organisation, storage_scp[0])
    assert delivery.deliver_due() == (0, 0)
    later = timezone.now() + timedelta(seconds=61)
    assert delivery.deliver_due(now=later) == (1, 0)


def test_without_a_pacs_the_delivery_says_not_configured(finished_study: Study) -> None:
    delivery.deliver_due()
    assert refreshed(finished_study).delivery_status == "not_configured"


def test_stow_rs_delivery_to_a_dicomweb_pacs(
    finished_study: Study, http_pacs: tuple[str, list[int]]
) -> None:
    url, _ = http_pacs
    dicomweb(finished_study.organisation, url)
    call_command("send_pacs_results")
    assert refreshed(finished_study).delivery_status == "sent"


def test_a_pacs_that_is_down_is_tried_again_later_then_given_up(
    finished_study: Study, settings: Any
) -> None:
    settings.DICOM_DELIVERY_MAX_ATTEMPTS = 2
    dimse(finished_study.organisation, free_port())  # nothing listens there
    assert delivery.deliver_due() == (0, 1)
    study = refreshed(finished_study)
    assert (study.delivery_status, study.delivery_attempts) == ("pending", 1)
    assert "no association" in study.delivery_error
    assert study.next_delivery_at is not None
    assert study.next_delivery_at > timezone.now() + timedelta(seconds=25)
    assert delivery.deliver_due() == (0, 0)  # not before its time
    assert delivery.deliver_due(now=timezone.now() + timedelta(seconds=31)) == (0, 1)
    study = refreshed(finished_study)
    assert study.delivery_status == "failed"
    assert study.delivery_error.startswith("Gave up after 2 attempts")


def test_a_pacs_refusal_fails_at_once(
    finished_study: Study, http_pacs: tuple[str, list[int]]
) -> None:
    url, statuses = http_pacs
    statuses.append(409)
    dicomweb(finished_study.organisation, url)
    delivery.deliver_due()
    study = refreshed(finished_study)
    assert study.delivery_status == "failed" and "answered 409" in study.delivery_error


def test_a_server_error_is_retried(finished_study: Study, http_pacs: tuple[str, list[int]]) -> None:
    url, statuses = http_pacs
    statuses.append(503)
    dicomweb(finished_study.organisation, url)
    delivery.deliver_due()
    assert refreshed(finished_study).delivery_status == "pending"
    delivery.deliver_due(now=timezone.now() + timedelta(seconds=31))
    assert refreshed(finished_study).delivery_status == "sent"


@pytest.fixture
def sent_study(finished_study: Study, storage_scp: tuple[int, list[Dataset]]) -> Study:
    port, received = storage_scp
    dimse(finished_study.organisation, port)
    delivery.deliver_due()
    assert len(received) == 2
    return refreshed(finished_study)


def test_new_instances_send_the_study_again(sent_study: Study, api: Any, patient: Any) -> None:
    more = mr_dataset(picture(5)[None], patient_id=patient.external_id,
                      study_uid=sent_study.study_instance_uid, instance_number=2)  # fmt: skip
    assert submit(api, patient, to_bytes(more), name="more.dcm").status_code == 202
    assert refreshed(sent_study).delivery_status == "pending"


def test_the_same_instances_again_do_not_send_the_study_again(
    sent_study: Study, api: Any, patient: Any
) -> None:
    instance = sent_study.series.get().instances.get()
    with instance.file.open("rb") as handle:
        response = submit(api, patient, handle.read(), name="again.dcm")
    assert response.json()["duplicates"] == 1
    assert refreshed(sent_study).delivery_status == "sent"
