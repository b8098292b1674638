from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from predictions.api import internal, model_releases, views

app_name = "api"

router = DefaultRouter()
router.register("patients", views.PatientViewSet, basename="patient")
router.register("scans", views.ScanViewSet, basename="scan")
router.register("jobs", views.JobViewSet, basename="job")

internal_urls = [
    # Contract 3's bulk endpoints, before the per-job ones (which take a UUID, not these words).
    path("internal/jobs/start/", internal.BulkStartView.as_view(), name="worker-bulk-start"),
    path(
        "internal/jobs/outcomes/", internal.BulkOutcomesView.as_view(), name="worker-bulk-outcomes"
    ),
    path(
        "internal/jobs/<uuid:job_id>/start/", internal.JobStartView.as_view(), name="worker-start"
    ),
    path(
        "internal/jobs/<uuid:job_id>/image/", internal.JobImageView.as_view(), name="worker-image"
    ),
    path(
        "internal/jobs/<uuid:job_id>/result/",
        internal.JobResultView.as_view(),
        name="worker-result",
    ),
    path(
        "internal/jobs/<uuid:job_id>/failure/",
        internal.JobFailureView.as_view(),
        name="worker-failure",
    ),
    path("internal/models/active/", model_releases.ActiveModelView.as_view(), name="model-active"),
    path(
        "internal/models/<str:version>/archive/",
        model_releases.ModelArchiveView.as_view(),
        name="model-archive",
    ),
    path(
        "internal/models/state/",
        model_releases.WorkerModelStateView.as_view(),
        name="model-state",
    ),
]

urlpatterns = router.urls + internal_urls
