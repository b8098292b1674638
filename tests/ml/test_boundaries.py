from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)  # fmt: skip
    return set(result.stdout.split())


def test_registry_labels_and_errors_are_cheap_to_import() -> None:
    loaded = loaded_after("import ml.registry, ml.labels, ml.errors, ml.preprocessing")
    assert not {"tensorflow", "keras", "django", "celery"} & loaded


def test_the_inference_engine_never_pulls_in_django_or_celery() -> None:
    loaded = loaded_after("import ml.inference, ml.model")
    assert "ml.inference" in loaded
    assert not {"django", "celery", "predictions", "workers", "webapp"} & loaded
