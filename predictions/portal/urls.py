from __future__ import annotations

from django.urls import path

from predictions.portal import audit_log, views

app_name = "portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("worklist/", views.worklist, name="worklist"),
    path("patients/", views.patient_list, name="patients"),
    path("patients/new/", views.patient_create, name="patient-create"),
    path("patients/<uuid:public_id>/", views.patient_detail, name="patient"),
    path("patients/<uuid:public_id>/scans/", views.scan_upload, name="scan-upload"),
    path("scans/<uuid:public_id>/image/", views.scan_image, name="scan-image"),
    path("scans/<uuid:public_id>/thumbnail/", views.scan_thumbnail, name="scan-thumbnail"),
    path("scans/<uuid:public_id>/move/", views.scan_move, name="scan-move"),
    path("scans/<uuid:public_id>/void/", views.scan_void, name="scan-void"),
    path("jobs/status/", views.job_status, name="job-status"),
    path("jobs/<uuid:public_id>/", views.job_detail, name="job"),
    path("jobs/<uuid:public_id>/heatmap/", views.job_heatmap, name="job-heatmap"),
    path("jobs/<uuid:public_id>/row/", views.job_row, name="job-row"),
    path("jobs/<uuid:public_id>/upload-item/", views.job_upload_item, name="job-upload-item"),
    path("jobs/<uuid:public_id>/badge/", views.job_badge, name="job-badge"),
    path("jobs/<uuid:public_id>/review/", views.job_review, name="job-review"),
    path("jobs/<uuid:public_id>/retry/", views.job_retry, name="job-retry"),
    path("export/reviewed.zip", views.export_reviewed, name="export-reviewed"),
    path("audit/", audit_log.audit_log, name="audit-log"),
]
