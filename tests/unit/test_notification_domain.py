"""Notification rules alone: templates (escaping, missing variables, SMS length), addresses, topics,
retry backoff, signed links and codes."""
from datetime import datetime, timedelta, timezone

from email import message_from_bytes, policy

import pytest

from contracts.errors import BadInput
from services.notification import domain
from services.notification.channels import SmtpSettings, build_email

EVENT = {"title": "Fête <b>", "commune": "Labège", "starts_at": "samedi", "url": "https://x.example/e/1"}


def test_email_renders_text_and_html_with_escaping_in_html_only():
    parts = domain.render(domain.template("event_published"), "email", {**EVENT, "unsubscribe_url": "https://u/1?a=1&b=2"})
    assert parts["subject"] == "Nouvel événement : Fête <b>"
    assert "Fête <b>" in parts["text"] and "https://u/1?a=1&b=2" in parts["text"]
    assert "Fête &lt;b&gt;" in parts["html"] and "https://u/1?a=1&amp;b=2" in parts["html"]


def test_a_missing_variable_is_an_error_naming_it_never_a_blank():
    with pytest.raises(BadInput) as exc:
        domain.render(domain.template("event_published"), "email", {"title": "x", "commune": "y", "url": "z"})
    assert exc.value.field == "personalisation.starts_at"


def test_the_unsubscribe_footer_is_optional():
    parts = domain.render(domain.template("event_published"), "email", EVENT)
    assert "désabonn" not in parts["text"].lower() and "Ne plus recevoir" not in parts["text"]


def test_sms_longer_than_612_characters_is_refused():
    tpl = domain.template("event_published")
    assert len(domain.render(tpl, "sms", EVENT)["text"]) <= domain.SMS_MAX
    with pytest.raises(BadInput, match="SMS trop long") as exc:
        domain.render(tpl, "sms", {**EVENT, "title": "x" * 600})
    assert exc.value.field == "personalisation"


def test_unknown_template_and_channel_are_named():
    with pytest.raises(BadInput) as exc:
        domain.template("nope")
    assert exc.value.field == "template"
    with pytest.raises(BadInput) as exc:
        domain.render(domain.template("login_code"), "sms", {"code": "1", "minutes": 1})
    assert exc.value.field == "channel"
    assert domain.template("login_code", 1).version == 1
    with pytest.raises(BadInput):
        domain.template("login_code", 99)


@pytest.mark.parametrize("raw, expected", [("Alice@Example.ORG", "alice@example.org"), (" b@x.fr ", "b@x.fr")])
def test_emails_are_normalised(raw, expected):
    assert domain.normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["nope", "a@", "a b@x.fr", ""])
def test_invalid_emails_are_refused(raw):
    with pytest.raises(BadInput) as exc:
        domain.normalise_email(raw)
    assert exc.value.field == "email"


def test_phones_are_e164_and_invalid_ones_refused():
    assert domain.normalise_phone("06 12 34 56 78") == "+33612345678"
    assert domain.normalise_phone("+44 20 7946 0958") == "+442079460958"
    for bad in ("12", "abc", "+33 1"):
        with pytest.raises(BadInput) as exc:
            domain.normalise_phone(bad)
        assert exc.value.field == "phone"


@pytest.mark.parametrize("topic, role, ok", [
    ("agenda:commune:labege", "citizen", True),
    ("agenda:category:concert", "citizen", True),
    ("consultation:new", "citizen", True),
    ("consultation:budget:cons-1a2b3c4d5e6f", "citizen", True),
    ("consultation:budget:", "citizen", False),
    ("consultation:budget:a.b", "agent", False),
    ("satisfaction:site:site-1", "citizen", False),
    ("satisfaction:site:site-1", "agent", True),
    ("agenda:commune:Labège", "citizen", False),
    ("agenda:commune:", "citizen", False),
])
def test_topics(topic, role, ok):
    if ok:
        assert domain.check_topic(topic, role) == topic
    else:
        with pytest.raises(BadInput) as exc:
            domain.check_topic(topic, role)
        assert exc.value.field == "topic"


def test_backoff_doubles_up_to_the_cap_and_stops_after_the_period():
    policy = domain.RetryPolicy(base=30, cap=300, period=3600)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    delays = [(policy.next_attempt(t0, n, t0) - t0).total_seconds() for n in range(1, 6)]
    assert delays == [30, 60, 120, 240, 300]
    assert policy.next_attempt(t0, 3, t0 + timedelta(seconds=3500)) is None


def test_smtp_codes_are_classified():
    assert domain.smtp_failure_is_permanent(550) and domain.smtp_failure_is_permanent(554)
    assert not domain.smtp_failure_is_permanent(451) and not domain.smtp_failure_is_permanent(None)


def test_signed_links_resist_tampering():
    token = domain.sign("s" * 32, "unsubscribe", "cit-1|agenda:commune:labege|email")
    assert domain.unsign("s" * 32, "unsubscribe", token) == "cit-1|agenda:commune:labege|email"
    assert domain.unsign("t" * 32, "unsubscribe", token) is None
    assert domain.unsign("s" * 32, "other", token) is None
    forged = domain.sign("s" * 32, "unsubscribe", "cit-2|x|email").split(".")[0] + "." + token.split(".")[1]
    assert domain.unsign("s" * 32, "unsubscribe", forged) is None
    assert domain.unsign("s" * 32, "unsubscribe", "garbage") is None


def test_codes_are_six_digits_and_bound_to_the_address():
    codes = {domain.new_login_code() for _ in range(50)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 40
    assert domain.code_digest("k", "a@x.fr", "123456") != domain.code_digest("k", "b@x.fr", "123456")
    assert domain.citizen_id("k", "a@x.fr") == domain.citizen_id("k", "a@x.fr") != domain.citizen_id("k", "b@x.fr")


def test_the_email_carries_rfc_8058_headers_and_both_parts():
    parts = domain.render(domain.template("event_published"), "email", EVENT)
    raw = build_email("noreply@parvis.example", "a@x.fr", {**parts, "subject": "Été\r\nBcc: evil@x.fr"},
                      "https://p.example/notifications/unsubscribe?t=x", "n-1")
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["List-Unsubscribe"] == "<https://p.example/notifications/unsubscribe?t=x>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Subject"] == "Été Bcc: evil@x.fr" and msg["Bcc"] is None, "no header injection"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == parts["text"]
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n").strip() == parts["html"]
    assert not msg.defects and all(not p.defects for p in msg.walk())
    assert b"\n" not in raw.replace(b"\r\n", b"") and max(map(len, raw.split(b"\r\n"))) <= 998, "SMTP lines"


def test_smtp_url_settings():
    s = SmtpSettings.from_url("smtp://user:p%40ss@mail.example:587?starttls=1&from=a@b.fr")
    assert (s.host, s.port, s.tls, s.username, s.password, s.sender) == ("mail.example", 587, "starttls", "user", "p@ss", "a@b.fr")
    assert SmtpSettings.from_url("smtps://mail.example").port == 465
    assert SmtpSettings.from_url("smtp://127.0.0.1:8025").tls == "none"
    with pytest.raises(ValueError):
        SmtpSettings.from_url("http://x")


@pytest.mark.parametrize("now_utc, start, end, expected_utc", [
    ("2026-01-10T22:30:00+00:00", "22:00", "07:00", "2026-01-11T06:00:00+00:00"),  # 23:30 Paris (UTC+1)
    ("2026-01-11T05:00:00+00:00", "22:00", "07:00", "2026-01-11T06:00:00+00:00"),  # 06:00 Paris
    ("2026-01-11T07:00:00+00:00", "22:00", "07:00", None),                        # 08:00 Paris
    ("2026-07-10T11:30:00+00:00", "12:00", "14:00", "2026-07-10T12:00:00+00:00"),  # 13:30 Paris (UTC+2)
    ("2026-07-10T09:30:00+00:00", "12:00", "14:00", None),                        # 11:30 Paris
    ("2026-07-10T10:30:00+00:00", "12:00", "14:00", "2026-07-10T12:00:00+00:00"),  # 12:30 Paris
    ("2026-07-10T10:30:00+00:00", None, None, None),
])
def test_quiet_hours_hold_until_their_end_in_paris_time(now_utc, start, end, expected_utc):
    got = domain.quiet_until(datetime.fromisoformat(now_utc), start, end)
    assert (got.isoformat() if got else None) == expected_utc


@pytest.mark.parametrize("name", sorted(t.name for t in domain.LATEST.values() if "email" in t.parts))
def test_a_fan_out_renders_once_and_gives_each_recipient_what_a_full_render_gives(name):
    tpl = domain.template(name)
    personalisation = {v: f"<{v}> & «{v}»" for v in domain.required_variables(tpl, "email")}
    personalisation.update({"published": False, "minutes": 10})
    if "events" in personalisation:  # the digest lists events: each one's fields, escaped the same way
        personalisation.update(count=2, events=[{k: f"<{k}{n}> & «{k}»" for k in ("title", "starts_at", "commune", "url")}
                                                for n in (1, 2)])
    fan_out = domain.FanOutRenderer(tpl, "email", personalisation)
    for url in ("https://parvis.example/notifications/unsubscribe?t=Y2l0.AbC-_x", "https://u.example/x?a=1&b=<2>"):
        assert fan_out(url) == domain.render(tpl, "email", {**personalisation, "unsubscribe_url": url})
    assert fan_out.base is not None, "the link is put in by replacement, not by a render per recipient"


def test_a_template_that_filters_the_link_gets_a_full_render_for_each_recipient():
    from services.notification.templates import Template

    tpl = Template("link_filtered", 1, "test", {"email": {
        "subject": "s", "text": "{{ unsubscribe_url | upper }}", "html": "<a href=\"{{ unsubscribe_url }}\">x</a>"}})
    fan_out = domain.FanOutRenderer(tpl, "email", {})
    for url in ("https://u.example/a", "https://u.example/x"):
        assert fan_out(url) == domain.render(tpl, "email", {"unsubscribe_url": url})
    assert fan_out.base is None


# -- what each partner's webhook receives (issue 10) -------------------------------------------------------
HOOKS = [{"_id": "wh-a", "partner": "mairie-a"},  # registered before topics: delivery receipts
         {"_id": "wh-a-failures", "partner": "mairie-a", "topics": ["notification.failed"]},
         {"_id": "wh-b", "partner": "mairie-b", "topics": ["notification.delivered", "notification.failed"]},
         {"_id": "wh-pay", "partner": "facturation", "topics": ["payment_link.succeeded"], "regie_ids": ["cantine"]}]


def _targets(kind: str, **kw) -> list[str]:
    return [h["_id"] for h in domain.webhook_targets(HOOKS, {"type": kind}, **kw)]


def test_a_receipt_goes_to_the_partner_that_asked_for_the_message_and_the_topics_it_chose():
    assert _targets("notification.delivered", partner="mairie-a") == ["wh-a"]
    assert _targets("notification.failed", partner="mairie-a") == ["wh-a", "wh-a-failures"]
    assert _targets("notification.delivered", partner="mairie-b") == ["wh-b"]
    assert _targets("notification.delivered") == [], "the platform's own messages: no partner's business"
    assert _targets("notification.delivered", partner="facturation") == [], "not one of its topics"


def test_a_payment_event_goes_to_the_partners_of_its_regie_that_subscribed_to_it():
    assert _targets("payment_link.succeeded", regie_id="cantine") == ["wh-pay"]
    assert _targets("payment_link.succeeded", regie_id="eau") == []
    assert _targets("payment_link.failed", regie_id="cantine") == []
    assert _targets("payment_link.succeeded") == []
    assert _targets("payment_link.succeeded", partner="facturation") == [], "a régie, not a partner's name"


def test_webhook_topics_and_regies_are_checked_together():
    assert domain.check_webhook_topics(["notification.failed", "notification.delivered", "notification.failed"],
                                       []) == (["notification.delivered", "notification.failed"], [])
    assert domain.check_webhook_topics(["payment_link.succeeded"], [" cantine", "eau", "eau"]) == (
        ["payment_link.succeeded"], ["cantine", "eau"])
    for topics, regies in ((["payment_link.succeeded"], []), (["notification.delivered"], ["cantine"]),
                           (["payment_link.failed"], ["can tine"])):
        with pytest.raises(BadInput) as exc:
            domain.check_webhook_topics(topics, regies)
        assert exc.value.field == "regie_ids"


def test_pay_signature_is_the_hex_hmac_of_the_raw_body():
    import hashlib
    import hmac

    body = b'{"type":"payment_link.succeeded"}'
    assert domain.pay_signature("k", body) == hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_amounts_are_written_the_french_way():
    from core.french import euros

    assert euros(1250) == "12,50\u00a0€" and euros(123456789) == "1\u202f234\u202f567,89\u00a0€"
    assert euros(-5) == "-0,05\u00a0€" and euros(100) == "1,00\u00a0€"
