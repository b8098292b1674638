"""Internal endpoints for workers that follow the site's model (MODEL_SOURCE=site)."""

from __future__ import annotations

from django.http import FileResponse, Http404
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ml.errors import ModelNotFoundError
from predictions.api.internal import WorkerView
from predictions.model_releases import active_release, release_of
from predictions.models import WorkerModelState


class ActiveModelView(WorkerView):
    def get(self, request: Request) -> Response:
        try:
            release = active_release()
        except ModelNotFoundError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(
            {"version": release.version, "sha256": release.sha256, "size": release.size}
        )


class ModelArchiveView(WorkerView):
    def get(self, request: Request, version: str) -> FileResponse:
        try:
            release = release_of(version)
        except ModelNotFoundError as exc:
            raise Http404(str(exc)) from exc
        response = FileResponse(
            open(release.path, "rb"),  # noqa: SIM115 (FileResponse closes it)
            content_type="application/gzip",
            as_attachment=True,
            filename=release.path.name,
        )
        response["X-Checksum-SHA256"] = release.sha256
        return response


class WorkerModelStateSerializer(serializers.Serializer[WorkerModelState]):
    worker = serializers.CharField(max_length=200)
    wanted = serializers.CharField(max_length=200, allow_blank=True)
    serving = serializers.CharField(max_length=200, allow_blank=True)
    error = serializers.CharField(max_length=2000, allow_blank=True)
    checked_at = serializers.CharField(max_length=40, required=False)


class WorkerModelStateView(WorkerView):
    def post(self, request: Request) -> Response:
        serializer = WorkerModelStateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        WorkerModelState.objects.update_or_create(
            worker=data["worker"],
            defaults={"wanted": data["wanted"], "serving": data["serving"], "error": data["error"]},
        )
        return Response({"recorded": True})
