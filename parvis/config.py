"""Platform configuration, read from the environment only (documented in README.md)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("agenda", "consultation", "satisfaction", "payment_link", "notification")

# Each service serves /metrics on its own port; the gateway serves it on its HTTP port.
DEFAULT_METRICS_PORTS = {
    "agenda": 9101,
    "consultation": 9102,
    "satisfaction": 9103,
    "payment_link": 9104,
    "notification": 9105,
}


def _retry_delays(raw: str) -> tuple[float, ...]:
    delays = tuple(float(x) for x in raw.split(",") if x.strip())
    if not delays or any(d <= 0 for d in delays):
        raise ValueError("PARVIS_RETRY_DELAYS must be a comma-separated list of positive seconds")
    return delays


@dataclass(frozen=True)
class Settings:
    env: str
    amqp_url: str
    mongo_url: str | None
    smtp_url: str | None
    http_port: int
    data_dir: Path
    secret: str
    metrics_port_base: int
    retry_delays: tuple[float, ...]
    outbox_interval: float
    mongo_port: int
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def metrics_port(self, service: str) -> int:
        return self.metrics_port_base + list(SERVICES).index(service)

    @property
    def effective_mongo_url(self) -> str:
        return self.mongo_url or f"mongodb://127.0.0.1:{self.mongo_port}/"


def _load_secret(env: str, data_dir: Path) -> str:
    secret = os.environ.get("PARVIS_SECRET")
    if secret:
        if len(secret) < 32:
            # HS256 wants a key of at least 256 bits (RFC 7518 §3.2).
            raise RuntimeError("PARVIS_SECRET must be at least 32 characters long")
        return secret
    if env == "production":
        raise RuntimeError("PARVIS_SECRET must be set when PARVIS_ENV=production")
    # Dev: generated once and kept under the data dir, so tokens survive restarts.
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secret)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic: two processes starting at once agree on one secret
    except FileExistsError:
        pass
    tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def load() -> Settings:
    env = os.environ.get("PARVIS_ENV", "dev")
    if env not in ("dev", "production"):
        raise RuntimeError(f"PARVIS_ENV must be 'dev' or 'production', not {env!r}")
    data_dir = Path(os.environ.get("PARVIS_DATA_DIR", "var")).resolve()
    return Settings(
        env=env,
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        mongo_url=os.environ.get("MONGO_URL") or None,
        smtp_url=os.environ.get("SMTP_URL") or None,
        http_port=int(os.environ.get("PARVIS_HTTP_PORT", "8000")),
        data_dir=data_dir,
        secret=_load_secret(env, data_dir),
        metrics_port_base=int(os.environ.get("PARVIS_METRICS_PORT_BASE", "9101")),
        retry_delays=_retry_delays(os.environ.get("PARVIS_RETRY_DELAYS", "1,5,30")),
        outbox_interval=float(os.environ.get("PARVIS_OUTBOX_INTERVAL", "1.0")),
        mongo_port=int(os.environ.get("PARVIS_MONGO_PORT", "27017")),
    )


# Workers (and prefetch: nameko takes as many messages at once) per service. The satisfaction service's
# submits wait for a round of writes shared with the submits queued behind it (see its IngestQueue): the more
# of them in the process, the bigger and fewer the rounds. With 10, kiosks beyond the tenth waited in the
# broker while a round ran (bench/kiosk_ingest.py: 20 kiosks, 7,400 votes/s with 10 workers, 9,500 with 40).
DEFAULT_MAX_WORKERS = {"satisfaction": 50}


def max_workers(name: str | None) -> int:
    """PARVIS_MAX_WORKERS_<SERVICE>, else PARVIS_MAX_WORKERS, else the service's default, else 10."""
    for var in ([f"PARVIS_MAX_WORKERS_{name.upper()}"] if name else []) + ["PARVIS_MAX_WORKERS"]:
        if os.environ.get(var):
            return int(os.environ[var])
    return DEFAULT_MAX_WORKERS.get(name or "", 10)
