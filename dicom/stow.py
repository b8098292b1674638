"""DICOMweb STOW-RS (PS3.18 10.5): a PACS pushes instances into one organisation.

`POST /dicomweb/studies[/{StudyInstanceUID}]` with `multipart/related;
type="application/dicom"`, authenticated by HTTP Basic with an organisation's
`StowCredential`. The answer is the standard Store Instances Response (dicom+json):
what was stored in ReferencedSOPSequence, what was not in FailedSOPSequence with
a FailureReason code and, in ErrorComment, the reason in words.
"""

from __future__ import annotations

import base64
import binascii
import logging
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from pydicom.dataset import Dataset

from dicom.ingest import store_instance
from dicom.models import StowCredential
from dicom.reading import DicomError, parse_instance
from predictions.models import Organisation

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# PS3.18 Table 10.5.3-2 and PS3.4 Annex B failure reasons.
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122  # not an image this service classifies (not MR head, no pixels)
NOT_AUTHORISED = 0x0124  # unknown patient, or a study of another patient
OUT_OF_RESOURCES = 0xA700
STUDY_UID_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
_REASON_BY_CODE = {
    "unknown_patient": NOT_AUTHORISED,
    "patient_mismatch": NOT_AUTHORISED,
    "study_patient_mismatch": NOT_AUTHORISED,
    "no_pixels": SOP_CLASS_NOT_SUPPORTED,
    "colour": SOP_CLASS_NOT_SUPPORTED,
    "too_many_pixels": OUT_OF_RESOURCES,
    "too_many_frames": OUT_OF_RESOURCES,
}
ERROR_COMMENT_LENGTH = 64  # ErrorComment is an LO


class StowError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@csrf_exempt
@require_POST
def store_instances(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    try:
        organisation = _authenticate(request)
        parts = _dicom_parts(request)
    except StowError as exc:
        return _error(exc)
    response = Dataset()
    response.ReferencedSOPSequence = []
    response.FailedSOPSequence = []
    for index, data in enumerate(parts, start=1):
        _store_part(request, organisation, data, index, study_uid, response)
    return _store_response(response)


def _authenticate(request: HttpRequest) -> Organisation:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise StowError(401, "Authenticate with HTTP Basic and this site's STOW-RS credential.")
    try:
        username, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise StowError(401, "Malformed Basic credentials.") from None
    credential = (
        StowCredential.objects.filter(username=username, revoked=False)
        .select_related("organisation")
        .first()
    )
    if credential is None or not credential.matches(secret):
        raise StowError(401, "Wrong STOW-RS credentials.")
    return credential.organisation


def _dicom_parts(request: HttpRequest) -> list[bytes]:
    content_type = request.headers.get("Content-Type", "")
    message = _multipart(content_type, b"")
    if message.get_content_type() != "multipart/related":
        raise StowError(415, 'Send multipart/related; type="application/dicom".')
    if str(message.get_param("type", "application/dicom")).strip('"') != "application/dicom":
        raise StowError(415, 'Only type="application/dicom" (Part 10 files) is accepted.')
    if not request.headers.get("Content-Length"):
        # Django reads no body without a length: refuse chunked uploads in words.
        raise StowError(
            411, "Send a Content-Length: chunked requests are not accepted "
            '(Orthanc: "ChunkedTransfers": false for this server).'
        )  # fmt: skip
    length = int(request.headers.get("Content-Length") or 0)
    if length > settings.DICOM_MAX_STUDY_BYTES:
        raise StowError(
            413, f"The request is {length:,} bytes; the limit is "
            f"{settings.DICOM_MAX_STUDY_BYTES:,} bytes."
        )  # fmt: skip
    # Read the stream ourselves: request.body would apply the form limit meant for slices.
    body = request.read(settings.DICOM_MAX_STUDY_BYTES + 1)
    if len(body) > settings.DICOM_MAX_STUDY_BYTES:
        raise StowError(413, "The request is larger than the limit.")
    parts = [p for p in _multipart(content_type, body).iter_parts() if isinstance(p, EmailMessage)]
    if not parts:
        raise StowError(400, "The multipart body holds no parts.")
    return [_payload(part) for part in parts]


def _multipart(content_type: str, body: bytes) -> EmailMessage:
    header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not isinstance(message, EmailMessage):
        raise StowError(400, "Unreadable multipart body.")
    return message


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _store_part(
    request: HttpRequest,
    organisation: Organisation,
    data: bytes,
    index: int,
    study_uid: str | None,
    response: Dataset,
) -> None:
    try:
        parsed = parse_instance(data, where=f"Part {index}")
    except DicomError as exc:
        response.FailedSOPSequence.append(_failed("", "", _code(exc), str(exc)))
        return
    dataset = parsed.dataset
    sop_class, sop_uid = str(dataset.SOPClassUID), parsed.sop_instance_uid
    if study_uid and str(dataset.StudyInstanceUID) != study_uid:
        reason = "The instance belongs to another study than the URL names."
        response.FailedSOPSequence.append(_failed(sop_class, sop_uid, STUDY_UID_MISMATCH, reason))
        return
    try:
        outcome = store_instance(parsed, organisation, AnonymousUser())
    except DicomError as exc:
        response.FailedSOPSequence.append(_failed(sop_class, sop_uid, _code(exc), str(exc)))
        return
    if outcome.refusal:
        response.FailedSOPSequence.append(
            _failed(sop_class, sop_uid, SOP_CLASS_NOT_SUPPORTED, outcome.refusal)
        )
        return
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    study_url = reverse("dicom-api:study-detail", args=[outcome.study.public_id])
    item.RetrieveURL = request.build_absolute_uri(study_url)
    response.ReferencedSOPSequence.append(item)


def _code(error: DicomError) -> int:
    return _REASON_BY_CODE.get(error.code, CANNOT_UNDERSTAND)


def _failed(sop_class: str, sop_uid: str, code: int, reason: str) -> Dataset:
    log.info("STOW-RS refused an instance: %s (%s)", reason, hex(code))
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    item.FailureReason = code
    item.ErrorComment = reason[:ERROR_COMMENT_LENGTH]
    return item


def _store_response(response: Dataset) -> JsonResponse:
    stored, failed = len(response.ReferencedSOPSequence), len(response.FailedSOPSequence)
    # 200: all stored; 202: some stored, some not; 409: none stored (PS3.18 10.5.3).
    status = 200 if not failed else (202 if stored else 409)
    if not failed:
        del response.FailedSOPSequence
    return JsonResponse(response.to_json_dict(), status=status, content_type=DICOM_JSON)


def _error(exc: StowError) -> HttpResponse:
    response = JsonResponse({"detail": str(exc)}, status=exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="dicomweb"'
    return response
