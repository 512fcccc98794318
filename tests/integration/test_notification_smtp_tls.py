"""The SMTP sender against a real server over TCP that requires STARTTLS and a login: it upgrades,
verifies the certificate, logs in, and reports a refused login or an untrusted server as temporary."""
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.notification.channels import SmtpSender, SmtpSettings, TemporaryFailure, build_email
from tests.support import free_port


class Keep:
    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((session.authenticated, session.ssl is not None, envelope.rcpt_tos))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"parvis" and auth_data.password == b"s3cret")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, auth_require_tls=True, authenticator=authenticator)
    controller.start()
    yield handler, controller.port, cert
    controller.stop()


MESSAGE = {"subject": "Bonjour", "text": "t", "html": "<p>h</p>"}


def test_starttls_and_login_then_delivered(tls_server):
    handler, port, cert = tls_server
    sender = SmtpSender(SmtpSettings.from_url(f"smtp://parvis:s3cret@127.0.0.1:{port}?starttls=1&cafile={cert}"))
    try:
        sender.send("a@example.org", build_email(sender.settings.sender, "a@example.org", MESSAGE, None, "n-1"))
    finally:
        sender.close()
    assert handler.received[-1] == (True, True, ["a@example.org"])


@pytest.mark.parametrize("url", [
    "smtp://parvis:wrong@127.0.0.1:{port}?starttls=1&cafile={cert}",  # login refused
    "smtp://parvis:s3cret@127.0.0.1:{port}?starttls=1",  # server certificate not trusted
    "smtp://127.0.0.1:{port}",  # the server requires STARTTLS
])
def test_what_the_server_refuses_is_a_temporary_failure(tls_server, url):
    handler, port, cert = tls_server
    before = len(handler.received)
    sender = SmtpSender(SmtpSettings.from_url(url.format(port=port, cert=cert)))
    with pytest.raises(TemporaryFailure):
        try:
            sender.send("a@example.org", build_email(sender.settings.sender, "a@example.org", MESSAGE, None, "n-2"))
        finally:
            sender.close()
    assert len(handler.received) == before
