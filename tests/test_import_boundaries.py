"""The web process never loads TensorFlow; workers never load Django (fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    return set(result.stdout.split())


def test_the_site_with_all_its_urls_never_imports_tensorflow() -> None:
    loaded = modules_after(
        "import django; django.setup()\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "import webapp.wsgi, predictions.dispatch, predictions.api.views"
    )
    assert "predictions.api.views" in loaded
    assert not {"tensorflow", "keras", "ml.inference", "workers.tasks"} & loaded


# kombu imports django.utils.functional when it is installed (for lazy strings in JSON);
# what matters is that no Django settings, ORM or site code is loaded.
NOT_IN_A_WORKER = {"django.conf", "django.db", "predictions", "webapp", "tensorflow", "keras"}


def test_the_celery_app_module_imports_neither_django_nor_tensorflow() -> None:
    loaded = modules_after("import workers.app, workers.contracts, workers.web_client")
    assert "workers.app" in loaded
    assert not NOT_IN_A_WORKER & loaded


def test_the_task_module_defers_tensorflow_to_the_child_process() -> None:
    loaded = modules_after("import workers.tasks")
    assert "workers.tasks" in loaded
    assert not NOT_IN_A_WORKER & loaded
