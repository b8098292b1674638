"""The identifier migration: keys filled in, collisions reported and kept apart, never merged."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("predictions", "0004_review_history_and_blind_reading")]
AFTER = [("predictions", "0005_patient_identity_and_scan_corrections")]


@pytest.mark.django_db(transaction=True)
def test_colliding_identifiers_are_reported_not_merged(capsys: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    organisation = old_apps.get_model("predictions", "Organisation").objects.create(name="A")
    Patient = old_apps.get_model("predictions", "Patient")
    first = Patient.objects.create(organisation=organisation, external_id="MRN-1001")
    second = Patient.objects.create(organisation=organisation, external_id=" mrn-1001 ")
    Patient.objects.create(organisation=organisation, external_id="MRN-2002")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    keys = dict(
        new_apps.get_model("predictions", "Patient").objects.values_list("pk", "identifier_key")
    )
    assert keys[first.pk] == "mrn-1001" and keys[second.pk] == f"mrn-1001#{second.pk}"
    assert sorted(keys.values())[-1] == "mrn-2002"
    report = capsys.readouterr().out
    assert (
        f"patient {second.public_id} has the same identifier as patient {first.public_id}" in report
    )
