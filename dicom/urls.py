from __future__ import annotations

from django.urls import path, re_path

from dicom import portal, stow

app_name = "dicom"

# DICOMweb paths have no trailing slash (PS3.18); accept one anyway.
urlpatterns = [
    re_path(r"^dicomweb/studies/?$", stow.store_instances, name="stow"),
    re_path(
        r"^dicomweb/studies/(?P<study_uid>[0-9.]{1,64})/?$",
        stow.store_instances,
        name="stow-study",
    ),
    path("studies/<uuid:public_id>/", portal.study_detail, name="study"),
]
