from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from predictions.api import internal, views

app_name = "api"

router = DefaultRouter()
router.register("patients", views.PatientViewSet, basename="patient")
router.register("scans", views.ScanViewSet, basename="scan")
router.register("jobs", views.JobViewSet, basename="job")

internal_urls = [
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
]

urlpatterns = router.urls + internal_urls
