"""The client's bulk calls: chunking by item count and size, and per-item answers."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from workers import web_client
from workers.contracts import MAX_BULK_ITEMS, FailureCode, FailureReport, PredictionResult
from workers.web_client import SiteClient, SiteError, StartAnswer

PROBABILITIES = {"glioma": 0.7, "meningioma": 0.1, "no_tumor": 0.1, "pituitary": 0.1}


def result(job_id: str, heatmap: bytes = b"") -> PredictionResult:
    return PredictionResult(job_id, "glioma", PROBABILITIES, "m", 1.0, "w", False, heatmap or None)


def recorded_all(client: SiteClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = lambda items: [{"id": item["id"], "recorded": True} for item in items]  # noqa: E731
    return {"results": answer(body["results"]), "failures": answer(body["failures"])}


@pytest.fixture
def client() -> SiteClient:
    return SiteClient("http://site.invalid", "secret")


def test_outcomes_go_in_requests_of_at_most_the_item_limit(client: SiteClient) -> None:
    results = [result(f"r{i}") for i in range(MAX_BULK_ITEMS + 5)]
    with mock.patch.object(SiteClient, "_bulk", autospec=True, side_effect=recorded_all) as bulk:
        answers = client.post_outcomes(results, [FailureReport("f", FailureCode.TIMEOUT, "late")])
    sizes = [len(c.args[2]["results"]) + len(c.args[2]["failures"]) for c in bulk.call_args_list]
    assert sizes == [MAX_BULK_ITEMS, 6]
    assert len(answers) == MAX_BULK_ITEMS + 6 and all(answers.values())


def test_large_heat_maps_split_the_outcomes_by_size(
    client: SiteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_client, "BULK_MAX_BYTES", 3000)
    results = [result(f"r{i}", heatmap=b"x" * 1500) for i in range(4)]  # ~2 kB of base64 each
    with mock.patch.object(SiteClient, "_bulk", autospec=True, side_effect=recorded_all) as bulk:
        client.post_outcomes(results, [])
    assert [len(c.args[2]["results"]) for c in bulk.call_args_list] == [1, 1, 1, 1]


def test_a_failed_request_fails_only_its_own_items(
    client: SiteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_client, "BULK_MAX_BYTES", 3000)
    down = SiteError("HTTP 503", permanent=False, status_code=503)
    calls = iter([down, None])

    def first_fails(self: SiteClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if (error := next(calls)) is not None:
            raise error
        return recorded_all(self, path, body)

    results = [result("a", heatmap=b"x" * 1500), result("b", heatmap=b"x" * 1500)]
    with mock.patch.object(SiteClient, "_bulk", autospec=True, side_effect=first_fails):
        assert client.post_outcomes(results, []) == {"a": down, "b": True}


def test_per_item_errors_become_permanent_site_errors(client: SiteClient) -> None:
    answer = {"jobs": [{"id": "a", "proceed": True, "attempt": 3},
                       {"id": "b", "error": "no such job"}]}  # fmt: skip
    with mock.patch.object(SiteClient, "_bulk", autospec=True, return_value=answer) as bulk:
        answers = client.start_many(["a", "b", "a"], "w")
    assert bulk.call_args.args[2] == {"worker": "w", "jobs": ["a", "b"]}  # each id once
    assert answers["a"] == StartAnswer(proceed=True, attempt=3)
    refused = answers["b"]
    assert isinstance(refused, SiteError) and refused.permanent and "no such job" in str(refused)
