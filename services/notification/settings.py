"""The notification service's settings: delivery pace and retries, sign-in code limits, the daily digest."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from core.settings import ServiceSettings, SettingsError, setting
from services.notification import domain
from services.notification.channels import SmtpSettings
from services.notification.egress import Allow


def _digest_hour(raw: str) -> int | None:
    return domain.parse_digest_hour(raw)


@dataclass(frozen=True)
class NotificationSettings(ServiceSettings):
    service: ClassVar[str] = "notification"

    # Payment events are handled in batches bounded by the prefetch, which is this (services/common/events.py).
    max_workers: int = setting(("PARVIS_MAX_WORKERS_{SERVICE}", "PARVIS_MAX_WORKERS"), 40,
                               "nameko workers of a service, and the messages it takes at once (prefetch); "
                               "`PARVIS_MAX_WORKERS_<SERVICE>` for one service",
                               shown="10, satisfaction and consultation 50, payment_link and notification 40")
    dispatch_interval: float = setting("PARVIS_NOTIFY_INTERVAL", 1.0, "seconds between two looks for messages "
                                       "due")
    batch: int = setting("PARVIS_NOTIFY_BATCH", 200, "messages a sending pipeline claims at once")
    concurrency: int = setting("PARVIS_NOTIFY_CONCURRENCY", 8, "sending pipelines, each with its SMTP connection",
                               parse=lambda raw: max(1, int(raw)))
    stale_sending: float = setting("PARVIS_NOTIFY_STALE_SENDING", 300.0, "seconds after which a claim left "
                                   "`sending` by a dead process is taken back")
    retry_base: float = setting("PARVIS_NOTIFY_RETRY_BASE", 30.0, "seconds before the first retry of a "
                                "temporary failure (then doubled)")
    retry_cap: float = setting("PARVIS_NOTIFY_RETRY_CAP", 3600.0, "longest wait between two attempts, in seconds")
    retry_period: float = setting("PARVIS_NOTIFY_RETRY_PERIOD", 86400.0, "seconds after its creation when a "
                                  "temporary failure becomes permanent")
    rate_email: float = setting("PARVIS_NOTIFY_RATE_EMAIL", 0.0, "e-mails per second at most (0: no limit)")
    rate_sms: float = setting("PARVIS_NOTIFY_RATE_SMS", 0.0, "SMS per second at most (0: no limit)")
    rate_in_app: float = setting("PARVIS_NOTIFY_RATE_IN_APP", 0.0, "in-app messages per second at most (0: no "
                                 "limit)")
    login_codes_per_address: int = setting("PARVIS_LOGIN_CODES_PER_ADDRESS", 5, "sign-in codes an address may "
                                           "request an hour")
    login_codes_per_ip: int = setting("PARVIS_LOGIN_CODES_PER_IP", 30, "sign-in codes a connection may request "
                                      "an hour")
    login_attempts_per_address: int = setting("PARVIS_LOGIN_ATTEMPTS_PER_ADDRESS", 10, "sign-in codes that may be "
                                              "tried for an address an hour, whatever the codes asked for")
    login_attempts_per_ip: int = setting("PARVIS_LOGIN_ATTEMPTS_PER_IP", 50, "sign-in codes a connection may try an "
                                         "hour")
    webhook_allow: Allow = setting("PARVIS_WEBHOOK_ALLOW", Allow(), "internal networks (CIDR) or host names that "
                                   "partners' webhooks may reach (on-premise partners); public addresses only "
                                   "otherwise", parse=Allow.parse, shown="none")
    digest_hour: int | None = setting("PARVIS_DIGEST_HOUR", 7, "hour (Paris time) of the daily digest of the "
                                      "agenda; `off`: only by the `send_digests` RPC", parse=_digest_hour)

    @cached_property
    def smtp(self) -> SmtpSettings | None:
        return SmtpSettings.from_url(self.smtp_url) if self.smtp_url else None

    def _settled(self, generate_secret: bool = True):
        settled = super()._settled(generate_secret)
        smtp = settled.smtp  # an SMTP_URL that cannot be read stops the service at start, not at the first message
        if settled.production and smtp is not None and smtp.password and smtp.tls == "none":
            raise SettingsError("SMTP_URL: a password is not sent in clear in production: use smtps:// or "
                                "?starttls=1")
        return settled

    @property
    def retry(self) -> domain.RetryPolicy:
        return domain.RetryPolicy(base=self.retry_base, cap=self.retry_cap, period=self.retry_period)

    @property
    def rates(self) -> dict[str, float]:
        """Channel -> messages per second (0: unlimited)."""
        return {"email": self.rate_email, "sms": self.rate_sms, "in_app": self.rate_in_app}

    @property
    def callback_delay(self) -> float:
        """First wait after a webhook failed (then doubled): the first of PARVIS_RETRY_DELAYS."""
        return self.retry_delays[0]
