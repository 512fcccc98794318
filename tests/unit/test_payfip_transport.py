"""The PayFiP adapter's HTTP transport (services/payment_link/providers/payfip.py: PayfipTransport, a urllib3 pool
under zeep): against a fake PayFiP on a loopback socket that answers, closes, resets, stays silent or cuts its answer
as each test says. A dropped kept-alive connection is sent again once, and only that; timeouts, refusals, cut answers
and redirects become the adapter's ProviderUnavailable messages; the environment's proxy and CA bundle are used."""
from __future__ import annotations

import gzip
import socket
import struct
import threading
import time

import pytest
import requests
import urllib3
from zeep.transports import Transport

from parvis.payfip_sim import soap_answer
from services.payment_link.providers import ProviderUnavailable
from services.payment_link.providers.payfip import PayfipProvider, PayfipTransport, provider_pool

DETAIL = {"dattrans": "14032026", "exer": "2026", "heurtrans": "1030", "idOp": "op-1", "mel": "jean@example.fr",
          "montant": "4250", "numauto": "A1B2", "numcli": "123456", "objet": "Cantine", "refdet": "FACT2026031",
          "resultrans": "P", "saisie": "T"}
ANSWER = soap_answer("recupererDetailPaiementSecurise", DETAIL).encode()


def http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class FakePayfip:
    """Reads each request, then does the next of `actions` (the last one again once they run out): answer, gzip
    (the same answer compressed, lower-case header names), close (no answer: RemoteDisconnected), reset (RST),
    silent (no answer until the test ends), cut (an answer shorter than its Content-Length), garbage (not HTTP),
    redirect (302)."""

    def __init__(self, actions):
        self.actions = list(actions)
        self.requests: list[tuple[int, str, dict]] = []  # (connection number, request line, headers)
        self.connections = 0
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._start(self._accept)

    def _start(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.sockets.append(conn)
            self._start(self._serve, conn, self.connections)

    def _serve(self, conn, number):
        with conn, conn.makefile("rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                headers = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                reader.read(int(headers.get("content-length") or 0))
                self.requests.append((number, line.decode().strip(), headers))
                action = self.actions[min(len(self.requests), len(self.actions)) - 1]
                if action == "answer":
                    conn.sendall(http("200 OK", ANSWER, "Content-Type: text/xml; charset=utf-8"))
                elif action == "gzip":
                    conn.sendall(http("200 OK", gzip.compress(ANSWER), "content-type: text/xml; charset=utf-8",
                                      "content-encoding: gzip"))
                elif action == "redirect":
                    conn.sendall(http("302 Found", b"", f"Location: {self.url}/ailleurs"))
                elif action == "cut":
                    conn.sendall(http("200 OK", ANSWER, "Content-Type: text/xml")[:-len(ANSWER) // 2])
                    return
                elif action == "garbage":
                    conn.sendall(b"NONSENSE\r\n")
                    return
                elif action == "silent":
                    self.done.wait(10)
                    return
                else:
                    if action == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return

    def close(self):
        self.done.set()
        for sock in [self.sock, *self.sockets]:  # wakes the threads blocked in accept() or readline()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def fake():
    servers = []

    def start(*actions):
        servers.append(FakePayfip(actions))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def provider():
    made = []

    def build(url, timeout=2.0, session=None):
        made.append(PayfipProvider(url, timeout=timeout, session=session))
        return made[-1]

    yield build
    for p in made:
        transport = p.client.transport
        transport.close() if isinstance(transport, PayfipTransport) else transport.session.close()


def test_a_call_goes_through_the_urllib3_pool_with_requests_headers(fake, provider):
    server = fake("answer")
    payfip = provider(server.url)
    assert type(payfip.client.transport) is PayfipTransport
    for _ in range(3):
        result = payfip.fetch_result("op-1")
        assert (result.status, result.amount, result.reference) == ("P", 4250, "FACT2026031")
    assert server.connections == 1 and len(server.requests) == 3  # kept alive
    _, line, headers = server.requests[0]
    assert line == "POST /tpa/services/securite HTTP/1.1"
    assert headers["user-agent"].startswith("Zeep/") and headers["content-type"] == "text/xml; charset=utf-8"
    assert "gzip" in headers["accept-encoding"] and headers["connection"] == "keep-alive" and "soapaction" in headers


def test_a_compressed_answer_with_lower_case_headers_is_read(fake, provider):
    assert provider(fake("gzip").url).fetch_result("op-1").status == "P"


@pytest.mark.parametrize("transport", ["urllib3", "requests"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_kept_alive_connection_dropped_by_payfip_is_sent_again_once_on_a_new_one(fake, provider, transport, how):
    server = fake("answer", how, "answer")
    payfip = provider(server.url, session=requests.Session() if transport == "requests" else None)
    assert payfip.fetch_result("op-1").status == "P"
    assert payfip.fetch_result("op-1").status == "P"  # dropped on the kept-alive connection, then sent again
    assert [number for number, _, _ in server.requests] == [1, 1, 2] and server.connections == 2


def test_a_second_drop_is_not_sent_a_third_time(fake, provider):
    server = fake("answer", "close", "close", "answer")
    payfip = provider(server.url)
    payfip.fetch_result("op-1")
    with pytest.raises(ProviderUnavailable, match="PayFiP est injoignable pour le moment") as exc:
        payfip.fetch_result("op-1")
    assert "Connection aborted" in exc.value.detail and len(server.requests) == 3
    assert payfip.fetch_result("op-1").status == "P" and len(server.requests) == 4


def test_a_late_answer_is_a_timeout_and_is_not_sent_again(fake, provider):
    server = fake("silent")
    payfip = provider(server.url, timeout=0.3)
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"^PayFiP n'a pas répondu dans les 0.3 secondes\.$"):
        payfip.fetch_result("op-1")
    assert time.monotonic() - began < 1.5 and len(server.requests) == 1


@pytest.mark.parametrize("how", ["cut", "garbage"])
def test_an_answer_cut_short_or_unreadable_is_not_sent_again(fake, provider, how):
    server = fake(how, "answer")  # PayFiP got the request
    with pytest.raises(ProviderUnavailable, match="PayFiP est injoignable pour le moment"):
        provider(server.url).fetch_result("op-1")
    assert len(server.requests) == 1


def test_a_redirect_is_not_followed(fake, provider):
    server = fake("redirect", "answer")
    with pytest.raises(ProviderUnavailable, match="erreur HTTP 302"):
        provider(server.url).fetch_result("op-1")
    assert len(server.requests) == 1


def test_a_refused_connection_is_unreachable_not_a_timeout(provider):
    closed = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    with pytest.raises(ProviderUnavailable, match="PayFiP est injoignable pour le moment"):
        provider(url).fetch_result("op-1")


def test_a_requests_session_given_by_the_caller_goes_through_zeeps_transport(fake, provider):
    session = requests.Session()
    payfip = provider(fake("answer").url, session=session)
    assert type(payfip.client.transport) is Transport and payfip.client.transport.session is session
    assert payfip.fetch_result("op-1").status == "P"


@pytest.fixture
def environ(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_the_proxy_of_the_environment_is_used_unless_no_proxy_names_the_host(environ, fake, provider):
    environ.setenv("HTTPS_PROXY", "http://agent:secret@proxy.example:3128")
    pool = provider_pool("https://www.payfip.gouv.fr/tpa/services/securite")
    assert isinstance(pool, urllib3.ProxyManager) and (pool.proxy.host, pool.proxy.port) == ("proxy.example", 3128)
    assert pool.proxy_headers == {"proxy-authorization": "Basic YWdlbnQ6c2VjcmV0"}
    assert pool.connection_pool_kw["maxsize"] == 64 and pool.connection_pool_kw["block"] is False
    environ.setenv("NO_PROXY", "payfip.gouv.fr")
    assert not isinstance(provider_pool("https://www.payfip.gouv.fr/tpa/services/securite"), urllib3.ProxyManager)

    proxy = fake("answer")  # an HTTP forward proxy sees the absolute URL
    environ.setenv("HTTP_PROXY", proxy.url)
    assert provider("http://payfip.invalid").fetch_result("op-1").status == "P"
    assert proxy.requests[0][1] == "POST http://payfip.invalid/tpa/services/securite HTTP/1.1"


def test_the_ca_bundle_of_the_environment_or_certifis(environ, tmp_path):
    settings = provider_pool("https://www.payfip.gouv.fr").connection_pool_kw
    assert (settings["cert_reqs"], settings["ca_certs"]) == ("CERT_REQUIRED", requests.certs.where())
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    environ.setenv("CURL_CA_BUNDLE", str(bundle))
    assert provider_pool("https://www.payfip.gouv.fr").connection_pool_kw["ca_certs"] == str(bundle)
    environ.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    settings = provider_pool("https://www.payfip.gouv.fr").connection_pool_kw
    assert settings["ca_cert_dir"] == str(tmp_path) and "ca_certs" not in settings
