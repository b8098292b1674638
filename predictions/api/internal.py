"""Endpoints only workers call: start a job, fetch its image, report a result or a failure.

Workers hold no database credentials and cannot read the media folder; this is
their whole view of the site. They authenticate with the shared worker secret.
"""

from __future__ import annotations

import hmac
import uuid
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
    WorkerFailureSerializer,
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
