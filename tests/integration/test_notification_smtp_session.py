"""The SMTP sender keeps its connection for many messages: a server that closes the kept session (421,
as at a limit of messages per session) gets the message again at once on a new connection, delivered
once; on a new connection the same answer stays a temporary failure, not retried there."""
import pytest

from services.notification.channels import SmtpSender, SmtpSettings, TemporaryFailure, build_email
from tests.support import smtp_server

MESSAGE = {"subject": "Bonjour", "text": "t", "html": "<p>h</p>"}


class Sessions:
    def __init__(self):
        self.opened = 0
        self.accepted: list[tuple[int, str]] = []  # (session number, recipient)
        self.close_next: set[str] = set()

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        if not hasattr(session, "parvis_number"):
            self.opened += 1
            session.parvis_number = self.opened
        if rcpt in self.close_next:
            self.close_next.discard(rcpt)
            return "421 4.7.0 Too many messages in this session, closing"
        self.accepted.append((session.parvis_number, rcpt))
        return "250 OK"


@pytest.fixture
def server():
    handler = Sessions()
    with smtp_server(handler) as port:
        yield handler, port


def send(sender: SmtpSender, to: str) -> None:
    sender.send(to, build_email(sender.settings.sender, to, MESSAGE, None, f"n-{to}"))


def test_one_session_for_many_messages_and_a_closed_one_is_reopened_for_the_message(server):
    handler, port = server
    sender = SmtpSender(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    try:
        for i in range(5):
            send(sender, f"r{i}@example.org")
        assert len({s for s, _ in handler.accepted}) == 1, "five messages over one connection"
        handler.close_next.add("closed@example.org")
        send(sender, "closed@example.org")  # 421 on the kept session: sent again on a new one
        send(sender, "after@example.org")
    finally:
        sender.close()
    assert [r for _, r in handler.accepted].count("closed@example.org") == 1
    sessions = [s for s, _ in handler.accepted]
    assert sessions == [1] * 5 + [2, 2], "the new session is kept in turn"


def test_the_same_answer_on_a_new_connection_is_a_temporary_failure(server):
    handler, port = server
    sender = SmtpSender(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    handler.close_next.add("first@example.org")
    try:
        with pytest.raises(TemporaryFailure) as exc:
            send(sender, "first@example.org")
        assert exc.value.code == 421
        send(sender, "first@example.org")  # the dispatcher's retry, later
    finally:
        sender.close()
    assert [r for _, r in handler.accepted] == ["first@example.org"]
