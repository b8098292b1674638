from __future__ import annotations

import pytest

from workers.config import ConfigError, celery_settings, default_device, queue_for_device


def test_jobs_go_to_the_gpu_queue_unless_cpu_is_the_default() -> None:
    assert queue_for_device(default_device({}), {}) == "inference"
    env = {"DEFAULT_DEVICE": "cpu", "CPU_QUEUE": "cheap"}
    assert queue_for_device(default_device(env), env) == "cheap"
    assert celery_settings(env)["task_default_queue"] == "cheap"


def test_queue_names_are_configurable() -> None:
    env = {"INFERENCE_QUEUE": "a100", "CPU_QUEUE": "spot-cpu"}
    assert queue_for_device("gpu", env) == "a100"
    assert queue_for_device("cpu", env) == "spot-cpu"


@pytest.mark.parametrize("device", ["tpu", "GPU0", "both"])
def test_refuses_an_unknown_default_device(device: str) -> None:
    with pytest.raises(ConfigError, match="DEFAULT_DEVICE must be one of gpu, cpu"):
        default_device({"DEFAULT_DEVICE": device})
