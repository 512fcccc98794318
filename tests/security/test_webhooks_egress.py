"""Partners' webhooks cannot reach our own network (SSRF): addresses refused at registration and at each delivery
after DNS resolution, the connection made to the address checked, no redirects, a short timeout, https only in
production, an allow-list for on-premise partners. Real sockets and a real TLS server on loopback."""
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.notification import egress
from services.notification.egress import Allow, Refused

LOOPBACK = Allow.parse("127.0.0.1/32")


@pytest.mark.parametrize("address,ok", [
    ("93.184.215.14", True), ("2a00:1450:4007:80e::200e", True),
    ("127.0.0.1", False), ("::1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("fe80::1", False), ("fd00::1", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("ff02::1", False), ("255.255.255.255", False), ("198.18.0.1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:93.184.215.14", True), ("64:ff9b::a00:1", False),
    ("2002:7f00:1::", False), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
])
def test_only_public_unicast_addresses_whatever_their_form(address, ok):
    assert egress.public(ipaddress.ip_address(address)) is ok


@pytest.mark.parametrize("url,production,message", [
    ("ftp://93.184.215.14/", False, "http(s)"),
    ("http://93.184.215.14/", True, "https"),
    ("https://user:pw@93.184.215.14/", False, "identifiants"),
    ("https:///nohost", False, "hôte"),
    ("https://93.184.215.14:99999/", False, "illisible"),
    ("http://127.0.0.1:15672/api/users", False, "réseau interne"),
    ("http://169.254.169.254/latest/meta-data/", False, "réseau interne"),
    ("http://[::ffff:10.0.0.1]/", False, "réseau interne"),
    ("http://localhost:5672/", False, "réseau interne"),
    ("https://nowhere.invalid/", False, "introuvable"),
])
def test_registration_refuses_what_could_reach_inside_with_a_reason(url, production, message):
    with pytest.raises(Refused) as err:
        egress.check(url, production=production)
    assert message in err.value.message and err.value.field == "url"


def test_an_allow_list_opens_named_networks_or_hosts_only():
    assert egress.check("http://127.0.0.1:8080/r", production=False, allow=LOOPBACK) == "http://127.0.0.1:8080/r"
    assert egress.check("http://localhost:8080/r", production=False, allow=Allow.parse("localhost"))
    with pytest.raises(Refused):
        egress.check("http://10.0.0.1/", production=False, allow=LOOPBACK)
    with pytest.raises(ValueError):
        Allow.parse("not a/network!")
    assert str(Allow.parse("10.0.0.0/8, partner.lan")) == "10.0.0.0/8,partner.lan"


class Hooks(BaseHTTPRequestHandler):
    received: list = []
    delay = 0.0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append((self.path, dict(self.headers), body))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/inside")
            self.end_headers()
            return
        time.sleep(Hooks.delay)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Hooks.received, Hooks.delay = [], 0.0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port
    srv.shutdown()
    srv.server_close()


def test_a_delivery_posts_to_the_address_checked_without_following_redirects(server):
    url = f"http://127.0.0.1:{server}/receipts?partner=a"
    assert egress.post(url, b"{}", {"Content-Type": "application/json"}, production=False, allow=LOOPBACK) == 204
    path, headers, body = Hooks.received[-1]
    assert path == "/receipts?partner=a" and body == b"{}" and headers["Host"] == f"127.0.0.1:{server}"
    with pytest.raises(OSError, match="redirects"):
        egress.post(f"http://127.0.0.1:{server}/redirect", b"{}", {}, production=False, allow=LOOPBACK)
    assert [p for p, _, _ in Hooks.received] == ["/receipts?partner=a", "/redirect"], "the redirect not followed"


def test_a_delivery_checks_the_address_again_after_resolution(server, monkeypatch):
    """A partner's name that pointed outside at registration and now points inside (DNS rebinding) is refused
    at delivery, and the connection goes to the address checked, not to a second resolution."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14", "127.0.0.1"])

    def rebinding(host, port, *a, **kw):
        if host == "partner.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert egress.check(f"http://partner.test:{server}/r", production=False) == f"http://partner.test:{server}/r"
    with pytest.raises(Refused):
        egress.post(f"http://partner.test:{server}/r", b"{}", {}, production=False)
    assert Hooks.received == []

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **kw: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))] if host == "partner.test" else real(host, port))
    egress.post(f"http://partner.test:{server}/r", b"{}", {}, production=False, allow=LOOPBACK)
    assert Hooks.received[-1][1]["Host"] == f"partner.test:{server}", "the name, though connected by address"


def test_a_slow_partner_times_out(server):
    Hooks.delay = 2.0
    started = time.monotonic()
    with pytest.raises(OSError):
        egress.post(f"http://127.0.0.1:{server}/slow", b"{}", {}, production=False, allow=LOOPBACK, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_https_verifies_the_partners_certificate_for_its_name(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    Hooks.received = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{srv.server_port}/r"
        trusting = ssl.create_default_context(cafile=str(cert))
        assert egress.post(url, b"{}", {}, production=True, allow=LOOPBACK, context=trusting) == 204
        with pytest.raises(ssl.SSLError):  # not trusted by the system's authorities
            egress.post(url, b"{}", {}, production=True, allow=LOOPBACK)
    finally:
        srv.shutdown()
        srv.server_close()
