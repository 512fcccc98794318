"""The notification templates: French, versioned, one entry per (name, version), parts per channel.

A template is code reviewed like code: a change of wording is a new version, so a notification
always says which text it was rendered from. Email has a subject, a text and an HTML part; SMS
and in-app a short text. Variables are checked before anything renders (see domain.render).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    description: str
    # channel -> part -> Jinja2 source; email parts: subject, text, html; sms and in_app: text
    parts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def channels(self) -> list[str]:
        return sorted(self.parts)


_FOOTER_TEXT = """
--
Sicoval, communauté d'agglomération du Sud-Est toulousain.
{% if unsubscribe_url is defined %}Ne plus recevoir ces messages : {{ unsubscribe_url }}{% endif %}"""
_FOOTER_HTML = """<hr><p style="font-size:small">Sicoval, communauté d'agglomération du Sud-Est toulousain.
{% if unsubscribe_url is defined %}<a href="{{ unsubscribe_url }}">Ne plus recevoir ces messages</a>{% endif %}</p>"""


def _html(body: str) -> str:
    return ("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"></head><body>"
            + body + _FOOTER_HTML + "</body></html>")


TEMPLATES: list[Template] = [
    Template("login_code", 1, "Code de connexion envoyé au citoyen", {
        "email": {
            "subject": "Votre code de connexion : {{ code }}",
            "text": "Bonjour,\n\nVotre code de connexion à Parvis est : {{ code }}\n"
                    "Il est valable {{ minutes }} minutes. Si vous n'avez rien demandé, ignorez ce message.\n"
                    + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Votre code de connexion à Parvis est : <strong>{{ code }}</strong></p>"
                          "<p>Il est valable {{ minutes }} minutes. Si vous n'avez rien demandé, ignorez ce message.</p>"),
        },
    }),
    Template("event_published", 1, "Nouvel événement publié dans une commune ou une catégorie suivie", {
        "email": {
            "subject": "Nouvel événement : {{ title }}",
            "text": "Bonjour,\n\nUn nouvel événement est publié à {{ commune }} : {{ title }}.\n"
                    "Quand : {{ starts_at }}\nEn savoir plus : {{ url }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Un nouvel événement est publié à {{ commune }} : "
                          "<strong>{{ title }}</strong>.</p><p>Quand : {{ starts_at }}</p>"
                          "<p><a href=\"{{ url }}\">En savoir plus</a></p>"),
        },
        "sms": {"text": "Parvis : nouvel événement à {{ commune }}, {{ title }}, {{ starts_at }}. {{ url }}"},
        "in_app": {"text": "Nouvel événement à {{ commune }} : {{ title }} ({{ starts_at }})"},
    }),
    Template("event_cancelled", 1, "Un événement suivi est annulé", {
        "email": {
            "subject": "Événement annulé : {{ title }}",
            "text": "Bonjour,\n\nL'événement « {{ title }} » prévu le {{ starts_at }} à {{ commune }} est annulé."
                    "\n{{ reason }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>L'événement « {{ title }} » prévu le {{ starts_at }} à "
                          "{{ commune }} est annulé.</p><p>{{ reason }}</p>"),
        },
        "sms": {"text": "Parvis : « {{ title }} » du {{ starts_at }} à {{ commune }} est annulé."},
        "in_app": {"text": "Annulé : {{ title }} ({{ starts_at }})"},
    }),
    Template("event_moderated", 1, "Décision de modération envoyée à l'organisateur", {
        "email": {
            "subject": "{% if published %}Votre événement est publié{% else %}Votre événement n'est pas publié"
                       "{% endif %} : {{ title }}",
            "text": "Bonjour {{ organization }},\n\n{% if published %}Votre événement « {{ title }} » est publié."
                    "\n{{ url }}{% else %}Votre événement « {{ title }} » n'a pas été publié.\nMotif : {{ reason }}"
                    "{% endif %}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour {{ organization }},</p>{% if published %}<p>Votre événement « {{ title }} » "
                          "est publié : <a href=\"{{ url }}\">le voir</a>.</p>{% else %}<p>Votre événement "
                          "« {{ title }} » n'a pas été publié.</p><p>Motif : {{ reason }}</p>{% endif %}"),
        },
    }),
    Template("agenda_digest", 1, "Résumé quotidien des événements publiés dans les sujets suivis", {
        "email": {
            "subject": "{% if count == 1 %}1 nouvel événement{% else %}{{ count }} nouveaux événements{% endif %}"
                       " dans votre agenda du {{ day }}",
            "text": "Bonjour,\n\n{% if count == 1 %}Un nouvel événement a été publié{% else %}{{ count }} nouveaux "
                    "événements ont été publiés{% endif %} dans les communes et catégories que vous suivez :\n"
                    "{% for e in events %}\n- {{ e.title }}\n  {{ e.starts_at }}, {{ e.commune }}\n  {{ e.url }}\n"
                    "{% endfor %}" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>{% if count == 1 %}Un nouvel événement a été publié{% else %}"
                          "{{ count }} nouveaux événements ont été publiés{% endif %} dans les communes et "
                          "catégories que vous suivez :</p><ul>{% for e in events %}<li><a href=\"{{ e.url }}\">"
                          "<strong>{{ e.title }}</strong></a><br>{{ e.starts_at }}, {{ e.commune }}</li>"
                          "{% endfor %}</ul>"),
        },
        "in_app": {"text": "Agenda du {{ day }} : {% for e in events %}{{ e.title }} ({{ e.starts_at }}, "
                           "{{ e.commune }}){% if not loop.last %} ; {% endif %}{% endfor %}"},
    }),
    Template("satisfaction_alert", 1, "Alerte ou retour à la normale de la satisfaction d'un site", {
        "email": {
            "subject": "{{ headline }} : {{ site }}",
            "text": "Bonjour,\n\n{{ headline }} sur le site {{ site }} ({{ commune }}).\n{{ detail }}\n"
                    + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p><strong>{{ headline }}</strong> sur le site {{ site }} "
                          "({{ commune }}).</p><p>{{ detail }}</p>"),
        },
        "sms": {"text": "Parvis : {{ headline }}, {{ site }} ({{ commune }}). {{ detail }}"},
        "in_app": {"text": "{{ headline }} : {{ site }} — {{ detail }}"},
    }),
]

# Consultations and participatory budgets (services/notification/consultations.py fills the variables).
TEMPLATES += [
    Template("consultation_opened", 1, "Une consultation, une enquête ou un budget participatif s'ouvre", {
        "email": {
            "subject": "{{ headline }} : {{ title }}",
            "text": "Bonjour,\n\n{{ headline }} : « {{ title }} ».\n{{ summary }}\n{{ until }}\nParticiper : {{ url }}\n"
                    + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>{{ headline }} : <strong>« {{ title }} »</strong>.</p><p>{{ summary }}</p>"
                          "<p>{{ until }}</p><p><a href=\"{{ url }}\">Participer</a></p>"),
        },
        "sms": {"text": "Parvis : {{ headline }}, « {{ title }} ». {{ until }} {{ url }}"},
        "in_app": {"text": "{{ headline }} : {{ title }} ({{ until }})"},
    }),
    Template("consultation_results", 1, "Les résultats d'une consultation ou d'un budget participatif sont publiés", {
        "email": {
            "subject": "Résultats publiés : {{ title }}",
            "text": "Bonjour,\n\nLes résultats de « {{ title }} » sont publiés ({{ participants }}).\n"
                    "Les consulter : {{ url }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Les résultats de <strong>« {{ title }} »</strong> sont publiés "
                          "({{ participants }}).</p><p><a href=\"{{ url }}\">Les consulter</a></p>"),
        },
        "sms": {"text": "Parvis : résultats publiés, « {{ title }} » ({{ participants }}). {{ url }}"},
        "in_app": {"text": "Résultats publiés : {{ title }} ({{ participants }})"},
    }),
    Template("budget_phase", 1, "Un budget participatif suivi change de phase", {
        "email": {
            "subject": "Budget participatif « {{ title }} » : {{ phase }}",
            "text": "Bonjour,\n\nBudget participatif « {{ title }} » : {{ detail }}\n{{ url }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Budget participatif <strong>« {{ title }} »</strong> : {{ detail }}</p>"
                          "<p><a href=\"{{ url }}\">Voir le budget participatif</a></p>"),
        },
        "sms": {"text": "Parvis : budget participatif « {{ title }} », {{ detail }} {{ url }}"},
        "in_app": {"text": "{{ title }} : {{ detail }}"},
    }),
    Template("project_decision", 1, "Décision sur un projet proposé, envoyée à son auteur", {
        "email": {
            "subject": "Votre projet « {{ title }} » : {{ headline }}",
            "text": "Bonjour,\n\nVotre projet « {{ title }} » pour le budget participatif : {{ headline }}.\n"
                    "{{ detail }}\n{{ url }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Votre projet <strong>« {{ title }} »</strong> pour le budget "
                          "participatif : {{ headline }}.</p><p>{{ detail }}</p><p><a href=\"{{ url }}\">Voir le "
                          "projet</a></p>"),
        },
        "in_app": {"text": "Votre projet « {{ title }} » : {{ headline }}. {{ detail }}"},
    }),
    Template("payment_receipt", 1, "Reçu envoyé au payeur quand le prestataire a confirmé son paiement", {
        "email": {
            "subject": "Paiement reçu : {{ amount }} pour {{ description }}",
            "text": "Bonjour,\n\nNous avons bien reçu votre paiement. Conservez ce message : c'est votre reçu.\n\n"
                    "Montant : {{ amount }}\nObjet : {{ description }}\nRéférence de la facture : {{ reference }}\n"
                    "Régie : {{ regie }}\nPayé le : {{ paid_at }}\nNuméro de paiement : {{ payment_id }}\n\n"
                    "Votre reçu en ligne : {{ url }}\n" + _FOOTER_TEXT,
            "html": _html("<p>Bonjour,</p><p>Nous avons bien reçu votre paiement. Conservez ce message : c'est votre "
                          "reçu.</p><table><tr><th scope=\"row\">Montant</th><td>{{ amount }}</td></tr>"
                          "<tr><th scope=\"row\">Objet</th><td>{{ description }}</td></tr>"
                          "<tr><th scope=\"row\">Référence de la facture</th><td>{{ reference }}</td></tr>"
                          "<tr><th scope=\"row\">Régie</th><td>{{ regie }}</td></tr>"
                          "<tr><th scope=\"row\">Payé le</th><td>{{ paid_at }}</td></tr>"
                          "<tr><th scope=\"row\">Numéro de paiement</th><td>{{ payment_id }}</td></tr></table>"
                          "<p><a href=\"{{ url }}\">Votre reçu en ligne</a></p>"),
        },
    }),
]

BY_KEY: dict[tuple[str, int], Template] = {(t.name, t.version): t for t in TEMPLATES}
LATEST: dict[str, Template] = {}
for _t in TEMPLATES:
    if _t.name not in LATEST or LATEST[_t.name].version < _t.version:
        LATEST[_t.name] = _t
