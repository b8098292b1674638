from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone
from knox.models import AuthToken

from predictions.models import Job, Membership, Organisation, Patient, Prediction, Scan
from tests.images import png_bytes


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Clinic {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"clinician{n}")
    password = factory.django.Password("correct horse battery staple")
    membership = factory.RelatedFactory(
        "tests.factories.MembershipFactory", factory_related_name="user"
    )


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory, membership=None)
    organisation = factory.SubFactory(OrganisationFactory)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    organisation = factory.SubFactory(OrganisationFactory)
    external_id = factory.Sequence(lambda n: f"MRN-{n:06d}")


class ScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scan

    patient = factory.SubFactory(PatientFactory)
    image = factory.LazyFunction(lambda: ContentFile(png_bytes(), name="scan.png"))
    sha256 = "0" * 64
    content_type = "image/png"
    size_bytes = 1000
    width = 96
    height = 96


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    scan = factory.SubFactory(ScanFactory)
    queue = "inference"
    # Handed to the broker, as almost every job is; None makes one that waits for dispatch.
    dispatched_at = factory.LazyFunction(timezone.now)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    job = factory.SubFactory(JobFactory, status=Job.Status.SUCCEEDED)
    label = "glioma"
    probabilities = {"glioma": 0.85, "meningioma": 0.05, "no_tumor": 0.05, "pituitary": 0.05}
    model_version = "test-model"
    inference_ms = 12.5


def api_token(user: object) -> str:
    """Issue an API token for `user` and return its key (only its hash is stored)."""
    _, key = AuthToken.objects.create(user=user)
    return str(key)
