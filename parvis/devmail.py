"""The development SMTP server: accepts every message and keeps it under $PARVIS_DATA_DIR/mail/ (one .eml
per message), so a person can read what the platform sent at /dev/mail. Never for production."""
from __future__ import annotations

import argparse
import os
import signal
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.controller import Controller

DEFAULT_PORT = 8025


class MailDirHandler:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        content = envelope.original_content or envelope.content
        header = f"X-Parvis-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp.write_bytes(header + (content if isinstance(content, bytes) else content.encode()))
        os.replace(tmp, path)
        return "250 Message accepted for delivery"


def serve(directory: Path, host: str, port: int) -> Controller:
    controller = Controller(MailDirHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    from core.settings import SupervisorSettings

    settings = SupervisorSettings.from_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.devmail_port)
    args = parser.parse_args(argv)
    directory = settings.data_dir / "mail"
    controller = serve(directory, args.host, args.port)
    print(f"PARVIS-READY devmail smtp://{args.host}:{args.port} -> {directory}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
