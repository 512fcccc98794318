"""The console's question builder in Debian's Chromium against the real stack: an agent edits a draft survey's
question (its texts and its display condition, shown back in words); once a response exists, only a typo's fix is
taken (kept in the form's history), a change of meaning is refused beside the label; axe-core on each page."""
import re
from datetime import datetime, timedelta, timezone

from playwright.sync_api import expect

from tests.consultation_flows import CREATE, SUBMIT, act, citizen, data, full_answers, survey_questions
from tests.e2e.test_consultation_pages import no_serious_violation
from tests.e2e.test_consultation_web import platform  # noqa: F401 - a fixture
from tests.e2e.test_web_pages import AGENT, sign_in


def test_an_agent_edits_a_question_then_only_fixes_a_typo_once_answered(platform, browser):
    url = platform.url
    questions = survey_questions()
    service = next(q for q in questions if q.get("id") == "service")
    service["label"] = "Quel servise utilisez-vous le plus ?"
    now = datetime.now(timezone.utc)
    c = data(url, CREATE, {"c": {"title": "Enquête à corriger", "kind": "SURVEY",
                                 "opensAt": (now + timedelta(hours=1)).isoformat(),
                                 "closesAt": (now + timedelta(days=10)).isoformat()},
                           "q": questions})["createConsultation"]
    context, page = sign_in(platform, browser, AGENT)
    page.goto(f"/console/consultations/{c['id']}")
    which = page.locator("#question-which")
    expect(which).to_contain_text("À remplir seulement si vous avez répondu « Oui » à la question 2.")
    which.get_by_role("link", name="Modifier la question 3").click()
    expect(page.get_by_role("heading", name="Modifier la question 3")).to_be_visible()
    condition = page.get_by_label("Afficher seulement si")
    expect(condition.locator("option:checked")).to_have_text("2. Utilisez-vous les déchèteries du Sicoval ? : « Oui »")
    no_serious_violation(page, "the question's form")
    page.get_by_label("Libellé de la question").fill("")
    page.get_by_role("button", name="Enregistrer la question").click()
    expect(page.locator("#libelle-error")).to_contain_text("obligatoire")
    no_serious_violation(page, "the question's form with its error")
    page.get_by_label("Libellé de la question").fill("Quelles déchèteries ?")
    page.get_by_label("Option 3").fill("Une autre déchèterie")
    condition.select_option(label="2. Utilisez-vous les déchèteries du Sicoval ? : « Non »")
    page.get_by_role("button", name="Enregistrer la question").click()
    expect(page.get_by_text("Question modifiée.")).to_be_visible()
    expect(which).to_contain_text("Quelles déchèteries ?")
    expect(which).to_contain_text("Une autre déchèterie")
    expect(which).to_contain_text("si vous avez répondu « Non » à la question 2.")

    # Opened and answered: the form is locked, a typo is still fixed, a change of meaning is refused.
    act(url, "scheduleConsultation", c["id"])
    act(url, "openConsultation", c["id"])
    answers = [a if a["questionId"] != "uses" else {"questionId": "uses", "choices": ["no"]} for a in full_answers()]
    data(url, SUBMIT, {"c": c["id"], "a": answers}, citizen("repondant"))
    page.goto(f"/console/consultations/{c['id']}")
    expect(page.get_by_text("Des réponses existent")).to_be_visible()
    page.locator("#question-service").get_by_role("link", name=re.compile("^Modifier")).click()
    expect(page.get_by_label("Afficher seulement si")).to_have_count(0)  # the condition no longer changes
    page.get_by_label("Libellé de la question").fill("Quel service préférez-vous ?")
    page.get_by_role("button", name="Enregistrer la question").click()
    expect(page.locator("#libelle-error")).to_contain_text("n'est pas une faute de frappe")
    page.get_by_label("Libellé de la question").fill("Quel service utilisez-vous le plus ?")
    page.get_by_role("button", name="Enregistrer la question").click()
    expect(page.get_by_text("Question corrigée")).to_be_visible()
    expect(page.locator("#question-service")).to_contain_text("Quel service utilisez-vous le plus ?")
    page.locator("#question-service").get_by_role("link", name=re.compile("^Modifier")).click()
    expect(page.get_by_role("listitem").filter(has_text="« Quel servise utilisez-vous le plus ? » → "
                                                        "« Quel service utilisez-vous le plus ? »")).to_be_visible()
    no_serious_violation(page, "the question's form once answered, with its history")
    context.close()
