from __future__ import annotations

from rest_framework.routers import SimpleRouter

from dicom import api

app_name = "dicom-api"

router = SimpleRouter()
router.register("studies", api.StudyViewSet, basename="study")
router.register("dicom-instances", api.InstanceViewSet, basename="instance")

urlpatterns = router.urls
