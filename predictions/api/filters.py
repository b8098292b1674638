"""The API's query-parameter filters, which drf-spectacular documents in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.request import Request

from predictions.models import Job, Patient, identifier_key


class QueryFilterBackend(DjangoFilterBackend):
    """django-filter's backend, left out when the request has no query parameters.

    With none, every filter is empty and filters nothing, but building the filter set (a
    form, validated) still costs about half a millisecond: on every poll of a job, since
    DRF filters detail lookups too. With parameters, lists and details filter as before.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        if not request.query_params:
            return queryset
        return super().filter_queryset(request, queryset, view)


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
