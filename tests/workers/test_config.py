from __future__ import annotations

import ssl

import pytest

from workers.config import ConfigError, broker_url, celery_settings


def test_defaults_are_safe_for_a_crashing_worker() -> None:
    settings = celery_settings({})
    assert settings["broker_url"] == "redis://127.0.0.1:6379/0"
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["task_default_queue"] == "inference"
    assert settings["accept_content"] == ["json"]
    assert settings["task_soft_time_limit"] < settings["task_time_limit"]
    options = settings["broker_transport_options"]
    assert settings["task_time_limit"] < options["visibility_timeout"] < 3600


def test_a_dead_broker_connection_times_out_instead_of_hanging() -> None:
    # kombu waits forever on a half-open connection (a cut link between clouds) without it.
    options = celery_settings({})["broker_transport_options"]
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 10
    assert options["socket_keepalive"] is True
    shorter = celery_settings({"WORKER_BROKER_SOCKET_TIMEOUT": "20"})["broker_transport_options"]
    assert shorter["socket_timeout"] == 20
    with pytest.raises(ConfigError, match="WORKER_BROKER_SOCKET_TIMEOUT"):
        celery_settings({"WORKER_BROKER_SOCKET_TIMEOUT": "1"})


def test_celery_broker_url_wins_over_redis_url() -> None:
    env = {"REDIS_URL": "redis://a:6379/0", "CELERY_BROKER_URL": "redis://b:6379/1"}
    assert broker_url(env) == "redis://b:6379/1"


@pytest.mark.parametrize("url", ["amqp://guest@rabbit//", "localhost:6379", "http://redis"])
def test_refuses_a_broker_url_that_is_not_redis(url: str) -> None:
    with pytest.raises(ConfigError, match="must start with redis://"):
        broker_url({"REDIS_URL": url})


def test_refuses_a_visibility_timeout_shorter_than_a_task() -> None:
    env = {"TASK_TIME_LIMIT": "300", "BROKER_VISIBILITY_TIMEOUT": "200"}
    with pytest.raises(ConfigError, match="must exceed TASK_TIME_LIMIT"):
        celery_settings(env)


def test_refuses_a_malformed_number() -> None:
    with pytest.raises(ConfigError, match="TASK_TIME_LIMIT must be an integer"):
        celery_settings({"TASK_TIME_LIMIT": "two minutes"})


def test_a_tls_broker_verifies_the_server_with_the_given_ca() -> None:
    env = {
        "CELERY_BROKER_URL": "rediss://:secret@redis.example.org:6380/0",
        "BROKER_TLS_CA_FILE": "/etc/mri/ca.pem",
    }
    tls = celery_settings(env)["broker_use_ssl"]
    assert tls == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/mri/ca.pem"}
    assert "broker_use_ssl" not in celery_settings({})
