"""Settings: every environment variable Parvis reads, declared once with its default and its meaning.

A process builds its settings once, at start, from the environment (`TheSettings.from_env()`), and hands
them to what needs them: nameko services get theirs injected (`services/common/settings.py`), the gateway
and the supervisor hold theirs. Nothing else reads `os.environ`. The README's configuration table is
generated from these declarations (`parvis schema`; a test fails when it is stale).

A setting is a dataclass field made by `setting(env, default, doc)`. A service's settings extend
`ServiceSettings` in the service's own package (e.g. `services/satisfaction/settings.py`).
"""
from __future__ import annotations

import dataclasses
import os
import secrets as _secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

SERVICES = ("agenda", "consultation", "satisfaction", "payment_link", "notification")


class SettingsError(ValueError):
    """A setting's value cannot be used: the message names the variable and what it expects."""


def setting(env: str | tuple[str, ...], default: Any, doc: str, *, parse: Callable[[str], Any] | None = None,
            shown: str | None = None) -> Any:
    """A field read from `env` (the first of several names that is set wins; `{SERVICE}` is the service's
    name in capitals). `parse` turns the text into the value (by default from the default's type);
    `shown` is the default as the README shows it when the value itself says little."""
    names = (env,) if isinstance(env, str) else tuple(env)
    return field(default=default, metadata={"env": names, "doc": doc, "parse": parse, "shown": shown})


def _seconds_list(raw: str) -> tuple[float, ...]:
    delays = tuple(float(x) for x in raw.split(",") if x.strip())
    if not delays or any(d <= 0 for d in delays):
        raise ValueError("a comma-separated list of positive seconds")
    return delays


def _flag(raw: str) -> bool:
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("1 or 0")


def _parse_as(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, Path):
        return lambda raw: Path(raw).resolve()
    return str


@dataclass(frozen=True)
class BaseSettings:
    """What every process reads: where the broker and the database are, the data dir, the secret."""

    service: ClassVar[str | None] = None  # the nameko service these settings are for, if any

    env: str = setting("PARVIS_ENV", "dev", "`production` masks internal errors, turns off GraphiQL and "
                       "introspection, requires `PARVIS_SECRET`", parse=lambda raw: _choice(raw, ("dev", "production")))
    amqp_url: str = setting("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ")
    mongo_url: str | None = setting("MONGO_URL", None, "MongoDB; when set, nothing embedded is started",
                                    shown="unset: `make run` starts nx-27017")
    smtp_url: str | None = setting("SMTP_URL", None, "outgoing mail: `smtp://[user:pass@]host[:port][?starttls=1&"
                                   "from=addr&timeout=10&cafile=path]` or `smtps://…`; in dev, received mail is "
                                   "listed at `/dev/mail`", shown="unset: `make run` starts a dev SMTP server")
    secret: str = setting("PARVIS_SECRET", "", "signs tokens, codes and links; at least 32 characters",
                          shown="dev: generated once into `$PARVIS_DATA_DIR/secret`")
    http_port: int = setting("PARVIS_HTTP_PORT", 8000, "gateway port")
    public_url: str = setting("PARVIS_PUBLIC_URL", "", "base of the links sent to people (e-mails, exports)",
                              shown="`http://127.0.0.1:$PARVIS_HTTP_PORT`")
    data_dir: Path = setting("PARVIS_DATA_DIR", None, "local data: embedded database files, dev secret, dev mail",
                             parse=lambda raw: Path(raw).resolve(), shown="`var` of the checkout")
    log_level: str = setting("PARVIS_LOG_LEVEL", "INFO", "log level of every process (`DEBUG` adds the timers "
                             "that found nothing to do and every RPC)",
                             parse=lambda raw: _choice(raw.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")))
    mongo_port: int = setting("PARVIS_MONGO_PORT", 27017, "embedded database port")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def effective_mongo_url(self) -> str:
        return self.mongo_url or f"mongodb://127.0.0.1:{self.mongo_port}/"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, generate_secret: bool = True):
        """Read every field from the environment, then settle the values that depend on others. Without
        `generate_secret`, a missing dev secret is an error rather than made (`parvis token` must sign with the
        secret the platform uses, never with a new one)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if not f.init or "env" not in f.metadata:
                continue
            for name in f.metadata["env"]:
                name = name.replace("{SERVICE}", (cls.service or "").upper())
                raw = environ.get(name)
                if not raw:  # unset, or set to nothing: the default
                    continue
                parse = f.metadata["parse"] or _parse_as(f.default)
                try:
                    values[f.name] = parse(raw)
                except (TypeError, ValueError) as exc:
                    raise SettingsError(f"{name}={raw!r}: {exc}") from None
                break
        settings = cls(**values)
        return settings._settled(generate_secret)

    def _settled(self, generate_secret: bool = True):
        """Defaults that depend on other settings, and the dev secret."""
        changes: dict[str, Any] = {}
        if not self.public_url:
            changes["public_url"] = f"http://127.0.0.1:{self.http_port}"
        elif self.public_url.endswith("/"):
            changes["public_url"] = self.public_url.rstrip("/")
        if self.data_dir is None:
            changes["data_dir"] = _default_data_dir()
        changes["secret"] = _secret(self.secret, self.production, changes.get("data_dir", self.data_dir),
                                    generate_secret)
        return dataclasses.replace(self, **changes)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _choice(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ValueError(f"one of {', '.join(choices)}")
    return raw


def _default_data_dir() -> Path:
    """`var` of the checkout the code runs from, whatever the current directory (a command run from elsewhere
    reads the same secret and data as `make run`); `var` of the current directory for an installed package."""
    root = Path(__file__).resolve().parent.parent
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "var"


def _secret(value: str, production: bool, data_dir: Path, generate: bool = True) -> str:
    if value:
        if len(value) < 32:
            # HS256 wants a key of at least 256 bits (RFC 7518 §3.2).
            raise SettingsError("PARVIS_SECRET must be at least 32 characters long")
        return value
    if production:
        raise SettingsError("PARVIS_SECRET must be set when PARVIS_ENV=production")
    # Dev: generated once and kept under the data dir, so tokens survive restarts.
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    if not generate:
        raise SettingsError(f"no secret in {path}: start the platform first (make run), or set PARVIS_SECRET "
                            "(or PARVIS_DATA_DIR to the platform's data directory)")
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = _secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(secret)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic: two processes starting at once agree on one secret
    except FileExistsError:
        pass
    tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@dataclass(frozen=True)
class ServiceSettings(BaseSettings):
    """What every nameko service reads besides the base: its worker pool, metrics port, retries, outbox."""

    max_workers: int = setting(("PARVIS_MAX_WORKERS_{SERVICE}", "PARVIS_MAX_WORKERS"), 10,
                               "nameko workers of a service, and the messages it takes at once (prefetch); "
                               "`PARVIS_MAX_WORKERS_<SERVICE>` for one service",
                               shown="10, satisfaction and consultation 50, payment_link and notification 40")
    metrics_port_base: int = setting("PARVIS_METRICS_PORT_BASE", 9101, "services' metrics ports, from this one in "
                                     "the order agenda, consultation, satisfaction, payment_link, notification")
    metrics_port_fixed: int | None = setting("PARVIS_METRICS_PORT", None, "one process's metrics port (as in "
                                             "docker compose; 0: none)", parse=int)
    metrics_addr: str = setting("PARVIS_METRICS_ADDR", "127.0.0.1", "address the services' metrics listen on "
                                "(`0.0.0.0` in containers)")
    retry_delays: tuple[float, ...] = setting("PARVIS_RETRY_DELAYS", (1.0, 5.0, 30.0), "seconds between the "
                                              "retries of a failed event handler, before the dead letters",
                                              parse=_seconds_list, shown="`1,5,30`")
    outbox_interval: float = setting("PARVIS_OUTBOX_INTERVAL", 1.0, "outbox relay poll, in seconds (it is also "
                                     "woken after every write)")
    outbox_hold: bool = setting("PARVIS_OUTBOX_HOLD", False, "keeps written events unpublished: a fault-injection "
                                "switch for the crash tests, never for production")
    inbox_retention_days: float = setting("PARVIS_INBOX_RETENTION_DAYS", 30.0, "days a handled event id is "
                                          "remembered (redeliveries within it are skipped)")
    queue_type: str = setting("PARVIS_QUEUE_TYPE", "classic", "type of the durable queues of event handlers, their "
                              "retries and the dead letters: `classic`, or `quorum` (replicated, for a RabbitMQ "
                              "cluster). A queue keeps the type it was declared with: to switch, see the README "
                              "(runbook, \"Switching to quorum queues\")",
                              parse=lambda raw: _choice(raw, ("classic", "quorum")))

    @property
    def metrics_port(self) -> int:
        """This service's metrics port (0: none)."""
        if self.metrics_port_fixed is not None:
            return self.metrics_port_fixed
        if self.service not in SERVICES:
            return 0  # a test service
        return self.metrics_port_base + SERVICES.index(self.service)

    @classmethod
    def for_service(cls, name: str, environ: Mapping[str, str] | None = None) -> "ServiceSettings":
        """The settings of a service known only by its name (a test service gets the base ones)."""
        sub = type(f"{name.title()}Settings", (cls,), {"service": name, "__doc__": cls.__doc__})
        return dataclass(frozen=True)(sub).from_env(environ)


@dataclass(frozen=True)
class SupervisorSettings(BaseSettings):
    """What `parvis up` reads besides the base."""

    devmail_port: int = setting("PARVIS_DEVMAIL_PORT", 8025, "dev SMTP server's port (any free one if taken)")
