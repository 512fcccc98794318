"""Settings: read once from the environment, checked, and the README's table generated from their declarations."""
import pytest

from core.settings import SERVICES, BaseSettings, ServiceSettings, SettingsError
from services.notification.settings import NotificationSettings
from services.satisfaction.settings import SatisfactionSettings


def env(tmp_path, **values):
    return {"PARVIS_DATA_DIR": str(tmp_path), "PARVIS_SECRET": "s" * 40, **values}


def test_defaults_and_values_from_the_environment(tmp_path):
    s = ServiceSettings.for_service("agenda", env(tmp_path))
    assert (s.amqp_url, s.retry_delays, s.max_workers, s.metrics_port) == (
        "amqp://guest:guest@127.0.0.1:5672/", (1.0, 5.0, 30.0), 10, 9101)
    s = ServiceSettings.for_service("agenda", env(tmp_path, PARVIS_RETRY_DELAYS="1, 5,30", PARVIS_HTTP_PORT="8100",
                                                  PARVIS_METRICS_PORT_BASE="9200"))
    assert s.retry_delays == (1.0, 5.0, 30.0) and s.public_url == "http://127.0.0.1:8100"
    assert [ServiceSettings.for_service(n, env(tmp_path, PARVIS_METRICS_PORT_BASE="9200")).metrics_port
            for n in SERVICES] == [9200, 9201, 9202, 9203, 9204]


def test_a_value_that_cannot_be_used_names_its_variable(tmp_path):
    with pytest.raises(SettingsError, match="PARVIS_RETRY_DELAYS"):
        ServiceSettings.for_service("agenda", env(tmp_path, PARVIS_RETRY_DELAYS="1,-2"))
    with pytest.raises(SettingsError, match="PARVIS_ENV"):
        BaseSettings.from_env(env(tmp_path, PARVIS_ENV="prod"))
    with pytest.raises(SettingsError, match="PARVIS_DIGEST_HOUR"):
        NotificationSettings.from_env(env(tmp_path, PARVIS_DIGEST_HOUR="25"))
    with pytest.raises(SettingsError, match="32 characters"):
        BaseSettings.from_env(env(tmp_path, PARVIS_SECRET="short"))


def test_worker_pools_per_service(tmp_path):
    """Satisfaction takes 50 workers (its submits join rounds in the process), the others nameko's 10;
    PARVIS_MAX_WORKERS sets all, PARVIS_MAX_WORKERS_<SERVICE> one."""
    def pools(**values):
        return (SatisfactionSettings.from_env(env(tmp_path, **values)).max_workers,
                ServiceSettings.for_service("agenda", env(tmp_path, **values)).max_workers)

    assert pools() == (50, 10)
    assert pools(PARVIS_MAX_WORKERS="20") == (20, 20)
    assert pools(PARVIS_MAX_WORKERS="20", PARVIS_MAX_WORKERS_SATISFACTION="80") == (80, 20)


def test_production_requires_a_secret(tmp_path):
    with pytest.raises(SettingsError, match="PARVIS_SECRET"):
        BaseSettings.from_env({"PARVIS_ENV": "production", "PARVIS_DATA_DIR": str(tmp_path)})


def test_dev_secret_is_generated_once_and_kept(tmp_path):
    first = BaseSettings.from_env({"PARVIS_DATA_DIR": str(tmp_path)}).secret
    assert len(first) > 40 and BaseSettings.from_env({"PARVIS_DATA_DIR": str(tmp_path)}).secret == first
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_notification_settings(tmp_path):
    s = NotificationSettings.from_env(env(tmp_path, PARVIS_DIGEST_HOUR="off", PARVIS_NOTIFY_CONCURRENCY="0",
                                          SMTP_URL="smtp://127.0.0.1:2525?from=x@example.org"))
    assert s.digest_hour is None and s.concurrency == 1 and s.smtp.port == 2525
    assert s.rates == {"email": 0.0, "sms": 0.0, "in_app": 0.0} and s.callback_delay == 1.0
    with pytest.raises(Exception):
        NotificationSettings.from_env(env(tmp_path, SMTP_URL="ftp://nowhere"))
