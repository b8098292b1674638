"""Send a finished study's results to its organisation's PACS, with retries, never in a request.

`manage.py send_pacs_results --loop` (beside the job sweeper) calls `deliver_due()`.
A study is due once every slice's job has finished and no instance has arrived for
DICOM_STUDY_SETTLE_S. A failed sending is tried again with doubling delays; after
DICOM_DELIVERY_MAX_ATTEMPTS, or at once for a permanent refusal, the study's
delivery is `failed` with the reason, for people to see in the API and the portal.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from dicom.models import PacsConnection, Study
from dicom.reports import build_reports
from dicom.studies import StudyStatus, slice_outcomes, study_result, study_status

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The PACS did not take the results; `permanent` when trying again cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def deliver_due(now: datetime | None = None) -> tuple[int, int]:
    """Send every due study's results; return (sent, failed this round)."""
    now = now or timezone.now()
    sent = failed = 0
    for study in _pending(now):
        if not _claim(study, now):
            continue  # another sender took it
        outcome = deliver(study)
        sent += outcome == Study.Delivery.SENT
        failed += outcome != Study.Delivery.SENT
    return sent, failed


def _pending(now: datetime) -> list[Study]:
    settled = now - timedelta(seconds=settings.DICOM_STUDY_SETTLE_S)
    return list(
        Study.objects.filter(delivery_status=Study.Delivery.PENDING, last_received__lte=settled)
        .filter(Q(next_delivery_at__isnull=True) | Q(next_delivery_at__lte=now))
        .select_related("organisation")
    )


def _claim(study: Study, now: datetime) -> bool:
    """Hold the study for one sender: a conditional update only one of them wins."""
    lease = now + timedelta(seconds=4 * settings.DICOM_DELIVERY_TIMEOUT_S)
    return bool(
        Study.objects.filter(
            pk=study.pk,
            delivery_status=Study.Delivery.PENDING,
            next_delivery_at=study.next_delivery_at,
        ).update(next_delivery_at=lease)
    )


def deliver(study: Study) -> str:
    """Try once to send `study`'s results; record and return the delivery status."""
    outcomes = slice_outcomes(study)
    status = study_status(study, outcomes)
    if status == StudyStatus.REFUSED:
        return _record(
            study, Study.Delivery.NOT_CONFIGURED, "Refused at the door: nothing to send."
        )
    if status != StudyStatus.DONE:
        return _retry_later(study, "", count_attempt=False)
    connection = PacsConnection.objects.filter(
        organisation=study.organisation, enabled=True
    ).first()
    if connection is None:
        return _record(study, Study.Delivery.NOT_CONFIGURED, "")
    result = study_result(outcomes)
    heatmap = _heatmap(result.deciding.job) if result else None
    try:
        send(connection, build_reports(study, result, heatmap).datasets())
    except DeliveryError as exc:
        log.warning("study %s: delivery failed: %s", study.public_id, exc)
        if exc.permanent:
            return _record(study, Study.Delivery.FAILED, str(exc), attempted=True)
        return _retry_later(study, str(exc))
    log.info("study %s: results sent to the PACS", study.public_id)
    return _record(study, Study.Delivery.SENT, "", attempted=True)


def _heatmap(job: object) -> bytes | None:
    prediction = getattr(job, "prediction", None)
    if prediction is None or not prediction.heatmap:
        return None
    with prediction.heatmap.open("rb") as handle:
        return bytes(handle.read())


def _record(study: Study, delivery: str, error: str, attempted: bool = False) -> str:
    attempts = study.delivery_attempts + (1 if attempted else 0)
    Study.objects.filter(pk=study.pk).update(
        delivery_status=delivery,
        delivery_error=error[:2000],
        delivery_attempts=attempts,
        delivered_at=timezone.now() if delivery == Study.Delivery.SENT else None,
        next_delivery_at=None,
    )
    return delivery


def _retry_later(study: Study, error: str, count_attempt: bool = True) -> str:
    attempts = study.delivery_attempts + (1 if count_attempt else 0)
    if attempts >= settings.DICOM_DELIVERY_MAX_ATTEMPTS:
        reason = f"Gave up after {attempts} attempts: {error}"
        return _record(study, Study.Delivery.FAILED, reason)
    delay = settings.DICOM_DELIVERY_BACKOFF_S * 2 ** max(0, attempts - 1)
    Study.objects.filter(pk=study.pk).update(
        delivery_attempts=attempts,
        delivery_error=error[:2000],
        next_delivery_at=timezone.now() + timedelta(seconds=delay),
    )
    return Study.Delivery.PENDING


def send(connection: PacsConnection, datasets: list[Dataset]) -> None:
    """Store `datasets` in the PACS, or raise `DeliveryError`."""
    if connection.protocol == PacsConnection.Protocol.DIMSE:
        _c_store(connection, datasets)
    else:
        _stow(connection, datasets)


def _stow(connection: PacsConnection, datasets: list[Dataset]) -> None:
    session = requests.Session()
    if connection.username:
        session.auth = (connection.username, connection.password)
    client = DICOMwebClient(
        url=connection.url, session=session, timeout=settings.DICOM_DELIVERY_TIMEOUT_S
    )
    # One round, one attempt: our schedule retries (and records each try), not the client.
    client.set_http_retry_params(retry=False)
    try:
        client.store_instances(datasets)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        # 4xx (other than 408 and 429) will not change by asking again.
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise DeliveryError(f"STOW-RS to {connection.url} answered {status}", permanent) from exc
    except requests.RequestException as exc:
        raise DeliveryError(f"STOW-RS to {connection.url} failed: {exc}") from exc
    finally:
        session.close()


def _c_store(connection: PacsConnection, datasets: list[Dataset]) -> None:
    entity = AE(ae_title=connection.calling_ae_title)
    timeout = settings.DICOM_DELIVERY_TIMEOUT_S
    entity.acse_timeout = entity.dimse_timeout = entity.network_timeout = timeout
    for sop_class in {str(dataset.SOPClassUID) for dataset in datasets}:
        entity.add_requested_context(sop_class, ExplicitVRLittleEndian)
    peer = f"{connection.called_ae_title}@{connection.host}:{connection.port}"
    association = entity.associate(
        connection.host, connection.port or 104, ae_title=connection.called_ae_title
    )
    if not association.is_established:
        raise DeliveryError(f"C-STORE: no association with {peer}")
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code != 0x0000:
                raise DeliveryError(f"C-STORE to {peer} answered status {code!r}")
    finally:
        association.release()
