"""The API's query-parameter filters, which drf-spectacular documents in the OpenAPI schema."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from predictions.models import Job, Patient, identifier_key


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Job.Status.choices, help_text="The job's status.")
    failure_code = django_filters.ChoiceFilter(
        choices=Job._meta.get_field("failure_code").choices,
        help_text="Why a failed job failed.",
    )
    patient = django_filters.UUIDFilter(
        field_name="scan__patient__public_id", help_text="The patient's id."
    )

    class Meta:
        model = Job
        fields = ["status", "failure_code", "patient"]


class PatientFilter(django_filters.FilterSet):
    external_id = django_filters.CharFilter(
        method="filter_external_id",
        help_text="The clinic's identifier, matched ignoring case and surrounding spaces.",
    )

    class Meta:
        model = Patient
        fields = ["external_id"]

    def filter_external_id(
        self, queryset: QuerySet[Patient], name: str, value: str
    ) -> QuerySet[Patient]:
        return queryset.filter(identifier_key=identifier_key(value))
