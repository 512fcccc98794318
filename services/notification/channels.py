"""Delivery channels behind one small interface: email over SMTP, SMS through a provider.

A sender opens a session for a batch (one SMTP connection for many messages) and reports each
message as delivered, or raises TemporaryFailure / PermanentFailure. Real SMS providers plug in by
implementing `SmsProvider`; the dev provider stores what it would send.
"""
from __future__ import annotations

import binascii
import functools
import os
import smtplib
import socket
import ssl
import urllib.parse
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate

DEFAULT_FROM = "ne-pas-repondre@parvis.localhost"


class TemporaryFailure(Exception):
    closed = False  # the SMTP server closed the session (no message accepted on it)

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.reason, self.code = reason, code


class PermanentFailure(Exception):
    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # "none" | "starttls" | "ssl"
    username: str | None
    password: str | None
    sender: str
    timeout: float
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "SmtpSettings":
        """smtp://[user:pass@]host[:port][?starttls=1&from=addr&timeout=10&cafile=path]; smtps:// for implicit TLS."""
        parsed = urllib.parse.urlparse(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        scheme = parsed.scheme.lower()
        if scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise ValueError(f"SMTP_URL: unsupported scheme {parsed.scheme!r}")
        tls = "ssl" if scheme == "smtps" else (
            "starttls" if scheme == "smtp+starttls" or query.get("starttls", "").lower() in ("1", "true", "yes")
            else "none")
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (465 if tls == "ssl" else 587 if tls == "starttls" else 25),
            tls=tls,
            username=urllib.parse.unquote(parsed.username) if parsed.username else None,
            password=urllib.parse.unquote(parsed.password) if parsed.password else None,
            sender=query.get("from", DEFAULT_FROM),
            timeout=float(query.get("timeout", "10")),
            cafile=query.get("cafile") or None,
        )


@functools.lru_cache(maxsize=1024)
def _header(value: str) -> str:
    """One line (no header injection through a title), RFC 2047-encoded when not ASCII (cached: a fan-out
    sends one subject thousands of times, and encoding it costs half of building a message)."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _part(content_type: str, text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode() + body + b"\r\n"


@functools.lru_cache(maxsize=8)
def _from_header(sender: str) -> str:
    return formataddr(("Parvis – Sicoval", sender))


def build_email(sender: str, to: str, parts: dict, unsubscribe_url: str | None, reference: str) -> bytes:
    """The message as sent: multipart/alternative (text, then HTML), quoted-printable UTF-8.

    Written directly rather than through email.message.EmailMessage, which costs about 4.5 ms per
    message (building and flattening): twenty times the rest of a delivery, and a fan-out sends
    thousands. Line ends are fixed to CRLF and dots stuffed by smtplib.
    """
    domain = sender.rsplit("@", 1)[-1]
    boundary = f"=_parvis_{uuid.uuid4().hex}"
    headers = [
        f"From: {_from_header(sender)}",
        f"To: {to}",
        f"Subject: {_header(parts['subject'])}",
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: <{uuid.uuid4().hex}@{domain}>",
        f"X-Parvis-Notification: {_header(reference)}",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/alternative; boundary=\"{boundary}\"",
    ]
    if unsubscribe_url:
        # RFC 8058: a one-click POST to this URI unsubscribes, without signing in.
        headers += [f"List-Unsubscribe: <{unsubscribe_url}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    sep = f"--{boundary}\r\n".encode()
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + sep + _part("text/plain", parts["text"]) + sep + \
        _part("text/html", parts["html"]) + f"--{boundary}--\r\n".encode()


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """Made once per CA file version: loading CA certificates costs milliseconds, and a fan-out opens many
    sessions; a CA file replaced on disk (new mtime) gives a new context."""
    try:
        version = os.stat(cafile).st_mtime_ns if cafile else None
    except OSError:
        version = None  # missing: create_default_context raises, as before
    return _tls_context_of(cafile, version)


@functools.lru_cache(maxsize=8)
def _tls_context_of(cafile: str | None, version: int | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


class SmtpSender:
    """One SMTP connection kept for many messages (a dispatcher pipeline's batches, one after the other);
    failures classified as temporary (4xx, network) or permanent (5xx)."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            context = _tls_context(s.cafile) if s.tls != "none" else None  # certificates always verified
            if s.tls == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    conn.starttls(context=context)
            if s.username:
                conn.login(s.username, s.password or "")
            return conn
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"SMTP login refused: {exc.smtp_code}", exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise TemporaryFailure(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(f"SMTP unreachable: {exc}") from None

    def send(self, to: str, message: bytes) -> None:
        kept = self.conn is not None
        try:
            self._send(to, message)
        except TemporaryFailure as exc:
            if not (kept and exc.closed):
                raise
            # The kept connection was closed by the server (idle timeout, a limit of messages per session:
            # 421 or a hang-up): once more on a new connection. The server did not say it accepted the
            # message, which as a temporary failure would be sent again later anyway: only when changes.
            self._send(to, message)

    def _send(self, to: str, message: bytes) -> None:
        if self.conn is None:
            self.conn = self._connect()
        try:
            refused = self.conn.sendmail(self.settings.sender, [to], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset()
            raise _classify(code, text)
        except smtplib.SMTPResponseException as exc:  # MAIL FROM / DATA refused
            self._reset()
            failure = _classify(exc.smtp_code, exc.smtp_error)
            if exc.smtp_code == 421:  # "service not available, closing transmission channel"
                self.close()
                failure.closed = True
            raise failure
        except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as exc:
            self.close()
            failure = TemporaryFailure(f"SMTP connection lost: {exc}")
            # Hung up or reset (not a timeout: waiting as long again would not help this batch).
            failure.closed = isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError))
            raise failure from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _classify(code, text)

    def _reset(self) -> None:
        try:
            self.conn.rset()
        except Exception:  # noqa: BLE001 - the server hung up: reconnect for the next message
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except Exception:  # noqa: BLE001
                try:
                    self.conn.close()
                except Exception:  # noqa: BLE001
                    pass
            self.conn = None


SENDER_SIDE_CODES = frozenset({530, 534, 535, 538})  # RFC 4954 / 3207: authentication or TLS required or refused


def _classify(code: int, text) -> Exception:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason = f"SMTP {code} {text}"
    if code in SENDER_SIDE_CODES:  # our configuration (TLS, login), not the recipient: fixed, it goes through
        return TemporaryFailure(reason, code)
    if 500 <= code < 600:
        return PermanentFailure(reason, code)
    return TemporaryFailure(reason, code)


class SmsProvider:
    """Interface of an SMS provider: send one message or raise Temporary/PermanentFailure."""

    name = "abstract"

    def send(self, to: str, text: str, reference: str) -> str:  # returns the provider's id
        raise NotImplementedError


class DevSmsProvider(SmsProvider):
    """Keeps messages in the service's own database (collection dev_sms) instead of sending them."""

    name = "dev"

    def __init__(self, store):
        self.store = store

    def send(self, to: str, text: str, reference: str) -> str:
        self.store.save_dev_sms(to, text, reference)
        return reference
