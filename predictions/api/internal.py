"""Endpoints only workers call: start a job, fetch its image, report a result or a failure.

Contract 3 adds two bulk endpoints (start many jobs, post many outcomes); each item in
them is checked and recorded on its own, exactly as the per-job endpoint would.

Workers hold no database credentials and cannot read the media folder; this is
their whole view of the site. They authenticate with the shared worker secret.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions import jobs
from predictions.api.serializers import (
    WorkerBulkStartSerializer,
    WorkerFailureSerializer,
    WorkerOutcomesSerializer,
    WorkerResultSerializer,
    WorkerStartSerializer,
)
from predictions.models import Job
from predictions.security import worker_failure_limit

KEYWORD = b"worker"


class WorkerIdentity:
    """The request's user when it carries the worker secret."""

    is_authenticated = True
    is_worker = True


class WorkerSecretAuthentication(BaseAuthentication):
    """`Authorization: Worker <secret>`; an address over WORKER_AUTH_FAILURE_LIMIT gets 429."""

    def authenticate(self, request: Request) -> tuple[WorkerIdentity, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Worker <secret>'.")
        limit = worker_failure_limit()
        limit.check(request)
        if not hmac.compare_digest(parts[1], settings.WORKER_SECRET.encode()):
            limit.record_failure(request)
            raise exceptions.AuthenticationFailed("Wrong worker secret.")
        return WorkerIdentity(), None

    def authenticate_header(self, request: Request) -> str:
        return "Worker"


class IsWorker(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return getattr(request.user, "is_worker", False)


class WorkerView(APIView):
    authentication_classes = [WorkerSecretAuthentication]
    permission_classes = [IsWorker]
    throttle_classes: list[Any] = []


class JobStartView(WorkerView):
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        serializer = WorkerStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(Job, public_id=job_id)
        job = jobs.mark_running(job_id, serializer.validated_data["worker"])
        if job is None:
            return Response({"proceed": False, "reason": "the job has already finished"})
        return Response({"proceed": True, "attempt": job.attempts})


class JobImageView(WorkerView):
    def get(self, request: Request, job_id: uuid.UUID) -> FileResponse:
        job = get_object_or_404(Job.objects.select_related("scan"), public_id=job_id)
        return FileResponse(job.scan.image.open("rb"), content_type=job.scan.content_type)


class JobResultView(WorkerView):
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        serializer = WorkerResultSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(Job, public_id=job_id)
        recorded = jobs.record_result(serializer.result(job_id))
        return Response({"recorded": recorded}, status=status.HTTP_200_OK)


class JobFailureView(WorkerView):
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        serializer = WorkerFailureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        get_object_or_404(Job, public_id=job_id)
        report = serializer.report(job_id)
        recorded = jobs.record_failure(job_id, report.failure_code, report.reason, report.worker)
        return Response({"recorded": recorded}, status=status.HTTP_200_OK)


class BulkStartView(WorkerView):
    """`{"worker", "jobs": [ids]}` -> `{"jobs": [...]}`, one item per id, in order.

    Each item is `{"id", "proceed", "attempt"}`, or `{"id", "error"}` for an id that names
    no job: an unknown id fails only its own item, not the request.
    """

    def post(self, request: Request) -> Response:
        serializer = WorkerBulkStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        worker = serializer.validated_data["worker"]
        ids = serializer.validated_data["jobs"]
        known = _known_jobs(ids)
        return Response({"jobs": [_start_one(raw, known, worker) for raw in ids]})


class BulkOutcomesView(WorkerView):
    """`{"results": [...], "failures": [...]}` -> the same lists of `{"id", "recorded"}`.

    An invalid item (bad id, unknown job, a body the per-job endpoint would refuse) gets
    `{"id", "error"}` and the others are still recorded.
    """

    def post(self, request: Request) -> Response:
        serializer = WorkerOutcomesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results, failures = (
            serializer.validated_data["results"],
            serializer.validated_data["failures"],
        )
        known = _known_jobs([str(item.get("id", "")) for item in [*results, *failures]])
        return Response(
            {
                "results": [_record_one(item, known, _record_result) for item in results],
                "failures": [_record_one(item, known, _record_failure) for item in failures],
            }
        )


def _parse_id(raw: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def _known_jobs(raw_ids: list[str]) -> set[uuid.UUID]:
    """The ids among `raw_ids` that name a job: one query for the whole request."""
    ids = {parsed for raw in raw_ids if (parsed := _parse_id(raw)) is not None}
    return set(Job.objects.filter(public_id__in=ids).values_list("public_id", flat=True))


def _start_one(raw: str, known: set[uuid.UUID], worker: str) -> dict[str, Any]:
    job_id = _parse_id(raw)
    if job_id is None:
        return {"id": raw, "error": "not a job id"}
    if job_id not in known:
        return {"id": raw, "error": "no such job"}
    job = jobs.mark_running(job_id, worker)
    if job is None:
        return {"id": raw, "proceed": False, "reason": "the job has already finished"}
    return {"id": raw, "proceed": True, "attempt": job.attempts}


Recorder = Callable[[uuid.UUID, dict[str, Any]], bool]


def _record_one(item: dict[str, Any], known: set[uuid.UUID], record: Recorder) -> dict[str, Any]:
    raw = item.get("id")
    job_id = _parse_id(raw) if raw is not None else None
    if job_id is None:
        return {"id": raw, "error": "not a job id"}
    if job_id not in known:
        return {"id": raw, "error": "no such job"}
    body = {key: value for key, value in item.items() if key != "id"}
    try:
        return {"id": raw, "recorded": record(job_id, body)}
    except exceptions.ValidationError as exc:
        return {"id": raw, "error": exc.detail}


def _record_result(job_id: uuid.UUID, body: dict[str, Any]) -> bool:
    serializer = WorkerResultSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return jobs.record_result(serializer.result(job_id))


def _record_failure(job_id: uuid.UUID, body: dict[str, Any]) -> bool:
    serializer = WorkerFailureSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    report = serializer.report(job_id)
    return jobs.record_failure(job_id, report.failure_code, report.reason, report.worker)
