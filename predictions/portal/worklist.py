"""The worklist: an organisation's results across patients, most suspicious first.

"Suspicion" is the probability of any tumour (1 - P(no tumour)); results the model
itself flags as needing review come before everything else.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import F, FloatField, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest

from predictions.models import LABEL_CHOICES, Job, organisation_of

# With no filter chosen the worklist shows what waits for a reader.
DEFAULT_FILTERS = {"status": Job.Status.SUCCEEDED.value, "reviewed": "false"}
FILTER_NAMES = (
    "status",
    "label",
    "needs_review",
    "reviewed",
    "reviewer",
    "failure_code",
    "since",
    "until",
)


def _members(request: HttpRequest | None) -> QuerySet[Any]:
    organisation = organisation_of(getattr(request, "user", None))
    return (
        get_user_model().objects.filter(membership__organisation=organisation).order_by("username")
    )


class WorklistFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Job.Status.choices, empty_label="any status")
    label = django_filters.ChoiceFilter(
        field_name="prediction__label",
        choices=LABEL_CHOICES,
        label="Model's label",
        empty_label="any label",
    )
    needs_review = django_filters.BooleanFilter(
        field_name="prediction__needs_review", label="Needs review"
    )
    reviewed = django_filters.BooleanFilter(method="filter_reviewed", label="Reviewed")
    reviewer = django_filters.ModelChoiceFilter(
        field_name="reviews__reviewed_by",
        queryset=_members,
        distinct=True,
        label="Reviewer",
        empty_label="anyone",
    )
    failure_code = django_filters.ChoiceFilter(
        choices=Job._meta.get_field("failure_code").choices, label="Failure", empty_label="any"
    )
    since = django_filters.DateFilter(
        field_name="created", lookup_expr="date__gte", label="Submitted from"
    )
    until = django_filters.DateFilter(
        field_name="created", lookup_expr="date__lte", label="Submitted until"
    )

    class Meta:
        model = Job
        fields: list[str] = []

    def filter_reviewed(
        self, queryset: QuerySet[Job], name: str, value: bool | None
    ) -> QuerySet[Job]:
        if value is None:
            return queryset
        return queryset.filter(reviews__isnull=not value).distinct()


def by_suspicion(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Order needs-review first, then by the probability of any tumour, then newest first."""
    no_tumour = Cast(KeyTextTransform("no_tumor", "prediction__probabilities"), FloatField())
    return jobs.annotate(no_tumour_probability=no_tumour).order_by(
        F("prediction__needs_review").desc(nulls_last=True),
        F("no_tumour_probability").asc(nulls_last=True),
        "-created",
        "-pk",
    )


def filter_data(query: dict[str, str]) -> dict[str, str]:
    """Return the filters to apply: those in the query, or the default when none is given."""
    chosen = {name: query[name] for name in FILTER_NAMES if name in query}
    return chosen or dict(DEFAULT_FILTERS)
