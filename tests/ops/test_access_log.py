"""No MRN reaches gunicorn's access log: it names paths without their query strings."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.gunicorn_site import gunicorn_site

MRN = "MRN-4417-SECRET"


@pytest.mark.django_db(transaction=True)
def test_the_access_log_leaves_query_strings_and_referers_out(
    static_var_dir: Path, tmp_path: Path
) -> None:
    with gunicorn_site(static_var_dir, tmp_path) as site:
        # Anonymous: redirected to the login page, whose ?next= carries the search too.
        search = requests.get(
            f"{site.url}/patients/",
            params={"q": MRN},
            headers={"Referer": f"{site.url}/patients/?q={MRN}"},
            timeout=30,
        )
        assert search.status_code == 200 and MRN in search.url  # the query did travel
        requests.get(f"{site.url}/api/v1/patients/", params={"external_id": MRN}, timeout=30)
        log = site.log()
    assert '"GET /patients/ HTTP/1.1" 302' in log
    assert '"GET /accounts/login/ HTTP/1.1" 200' in log
    assert '"GET /api/v1/patients/ HTTP/1.1" 401' in log
    assert MRN not in log
