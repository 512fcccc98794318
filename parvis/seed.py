"""Demo data: the Sicoval's communes, organisations, categories and themes, loaded through RPC.

Idempotent: organisations are upserted by id and an event is emitted only for a new or changed one.
"""
from __future__ import annotations

import json
from importlib import resources

from contracts.agenda import ReferenceData


def _raw() -> dict:
    return json.loads(resources.files("parvis.data").joinpath("demo.json").read_text(encoding="utf-8"))


def demo_data() -> dict:
    raw = _raw()
    return ReferenceData.model_validate({k: raw[k] for k in ("communes", "organizations", "categories", "themes")}).model_dump()


def demo_sites() -> list[dict]:
    """The demo sites of the satisfaction kiosks, each with its kiosks (`kiosks`)."""
    return _raw()["satisfaction_sites"]


async def seed_demo_sites(rpc, token_ids: dict[str, str]) -> dict:
    """The demo sites and kiosks, through the agents' RPCs: sites created when missing, kiosks registered with
    the token ids given (kiosk id -> jti), or, when already there, given those tokens (the old ones stop)."""
    from contracts.errors import BadInput

    operator = {"caller": {"role": "operator", "subject": "parvis-seed"}, "correlation_id": "seed-demo-sites"}
    known = {s["id"] for s in await rpc.call("satisfaction", "list_sites", context=operator)}
    kiosks = 0
    for site in demo_sites():
        fields = {k: v for k, v in site.items() if k != "kiosks"}
        if site["id"] not in known:
            await rpc.call("satisfaction", "upsert_site", context=operator, **fields)
        for kiosk in site["kiosks"]:
            token_id = token_ids.get(kiosk["id"])
            if token_id is None:
                continue
            try:
                await rpc.call("satisfaction", "register_kiosk", context=operator, site_id=site["id"],
                               token_id=token_id, **kiosk)
            except BadInput:  # registered by an earlier start: it takes this start's token
                await rpc.call("satisfaction", "rotate_kiosk_token", context=operator, id=kiosk["id"], token_id=token_id)
            kiosks += 1
    return {"sites": len(demo_sites()), "kiosks": kiosks}


async def seed(rpc) -> dict:
    operator = {"role": "operator", "subject": "parvis-seed"}
    return await rpc.call("agenda", "import_reference_data", timeout=60.0,
                          context={"caller": operator, "correlation_id": "seed-demo-data"}, **demo_data())


# A few upcoming events so that a fresh `make run` shows a living agenda; dates follow today's.
DEMO_EVENTS = [
    {"key": "fete-labege", "org": "org-comite-des-fetes-de-labege", "days": 9, "hour": 19, "hours": 5,
     "title": "Fête de la musique d'hiver à Labège", "category": "fete-locale", "commune": "labege",
     "place": "Place de la mairie", "description": "Concerts des écoles de musique et **buvette** associative."},
    {"key": "marche-baziege", "org": "org-commune-baziege", "days": 4, "hour": 8, "hours": 5,
     "title": "Marché de producteurs de Baziège", "category": "marche", "commune": "baziege",
     "place": "Halle", "description": "Producteurs locaux du Lauragais, chaque samedi matin.",
     "rrule": "FREQ=WEEKLY;COUNT=12"},
    {"key": "rando-montgiscard", "org": "org-randonneurs-du-lauragais", "days": 6, "hour": 9, "hours": 4,
     "title": "Randonnée le long du canal du Midi", "category": "sport", "commune": "montgiscard",
     "place": "Écluse de Montgiscard", "description": "12 km, niveau facile. Prévoir de l'eau."},
    {"key": "reunion-sicoval", "org": "org-sicoval", "days": 14, "hour": 18, "hours": 2,
     "title": "Réunion publique : plan climat du Sicoval", "category": "reunion-publique", "commune": "labege",
     "place": "Siège du Sicoval", "description": "Présentation et échanges avec les habitants."},
    {"key": "ludo-ramonville", "org": "org-ludotheque-de-ramonville", "days": 3, "hour": 14, "hours": 3,
     "title": "Après-midi jeux en famille", "category": "jeune-public", "commune": "ramonville-saint-agne",
     "place": "Ludothèque", "description": "Jeux de société pour tous les âges, entrée libre."},
]
DEMO_SOURCE = "parvis-demo"


def demo_event_input(spec: dict, today) -> dict:
    from datetime import datetime, timedelta

    day = today + timedelta(days=spec["days"])
    start = datetime(day.year, day.month, day.day, spec["hour"])  # Europe/Paris wall time
    event = {"title": spec["title"], "description": spec["description"], "category": spec["category"],
             "location": {"place": spec["place"], "commune": spec["commune"]},
             "slots": [{"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=spec["hours"])).isoformat()}],
             "external_ids": [{"source": DEMO_SOURCE, "id": spec["key"]}], "free": True}
    if spec.get("rrule"):
        event["rrule"] = spec["rrule"]
    return event


async def seed_demo_events(rpc) -> dict:
    """Create, submit and approve the demo events that are not there yet (idempotent by external id)."""
    from datetime import date

    agent = {"caller": {"role": "agent", "subject": "parvis-seed"}, "correlation_id": "seed-demo-events"}
    created = existing = 0
    for spec in DEMO_EVENTS:
        organizer = {"caller": {"role": "organizer", "subject": "parvis-seed", "org": spec["org"]},
                     "correlation_id": "seed-demo-events"}
        page = await rpc.call("agenda", "my_events", context=organizer, first=500)
        if any(x["source"] == DEMO_SOURCE and x["id"] == spec["key"]
               for item in page["items"] for x in item.get("external_ids", [])):
            existing += 1
            continue
        view = await rpc.call("agenda", "create_event", context=organizer, event=demo_event_input(spec, date.today()))
        view = await rpc.call("agenda", "submit_event", context=organizer, id=view["id"])
        await rpc.call("agenda", "moderate_event", context=agent, id=view["id"], version=view["version"],
                       decision="approve")
        created += 1
    return {"events_created": created, "events_existing": existing}


# -- consultations: an open survey and a participatory budget in its vote ------------------------------------
def demo_consultations() -> dict:
    return _raw()["consultations"]


PHASES = ("INFORMING", "ACCEPTING", "REVIEWING", "SELECTING", "VALUATING", "PUBLISHING_PRICES", "BALLOTING",
          "REVIEWING_BALLOTS", "FINISHED")


async def seed_demo_consultations(rpc) -> dict:
    """The demo survey (open for a month) and the demo budget, brought through its phases to the vote as agents
    and citizens would (projects proposed, approved, supported, priced, put on the ballot). Idempotent by title."""
    from datetime import datetime, timedelta, timezone

    agent = {"caller": {"role": "agent", "subject": "parvis-seed"}, "correlation_id": "seed-demo-consultations"}

    def citizen(n: int) -> dict:
        return {"caller": {"role": "citizen", "subject": f"cit-demo{n:016d}"}, "correlation_id": "seed-demo-consultations"}

    async def call(method: str, context: dict = agent, **kwargs):
        return await rpc.call("consultation", method, context=context, timeout=30.0, **kwargs)

    demo = demo_consultations()
    existing = {c["title"] for c in (await call("list_consultations", first=100))["items"]}
    report = {"survey": "existing", "budget": "existing"}
    now = datetime.now(timezone.utc)
    survey = demo["survey"]
    if survey["title"] not in existing:
        created = await call("create_consultation", questions=survey["questions"], consultation={
            "title": survey["title"], "summary": survey["summary"], "description": survey["description"],
            "kind": "SURVEY", "opens_at": (now + timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=survey["days_open"])).isoformat()})
        await call("schedule_consultation", id=created["id"])
        await call("open_consultation", id=created["id"])
        report["survey"] = created["id"]
    budget = demo["budget"]
    if budget["title"] not in existing:
        start = now + timedelta(days=1)  # phases of two weeks; moved on now, one after the other, to the vote
        phases = [{"kind": k, "starts_at": (start + timedelta(days=14 * i)).isoformat(),
                   "ends_at": None if k == "FINISHED" else (start + timedelta(days=14 * (i + 1))).isoformat()}
                  for i, k in enumerate(PHASES)]
        created = await call("create_consultation", consultation={
            "title": budget["title"], "summary": budget["summary"], "description": budget["description"],
            "kind": "BUDGET", "budget": {"phases": phases, "headings": budget["headings"], "instance": budget["instance"],
                                         "tie_break": "LOWER_PRICE"}})
        bid = created["id"]
        await call("schedule_consultation", id=bid)
        for to in ("INFORMING", "ACCEPTING"):
            await call("advance_budget_phase", budget_id=bid, to=to)
        ids = []
        for n, p in enumerate(budget["projects"]):
            project = await call("propose_project", citizen(n), budget_id=bid, project={
                "title": p["title"], "description": p["description"], "heading_id": p["heading"],
                "estimated_cost_cents": p["cost"], "location": {"lat": p["lat"], "lon": p["lon"]}})
            await call("moderate_project", project_id=project["id"], decision="APPROVE")
            ids.append(project["id"])
        for to in ("REVIEWING", "SELECTING"):
            await call("advance_budget_phase", budget_id=bid, to=to)
        for n, pid in enumerate(ids):
            for supporter in range(n % 4 + 1):
                await call("support_project", citizen(1000 + 10 * n + supporter), project_id=pid)
        await call("advance_budget_phase", budget_id=bid, to="VALUATING")
        for pid, p in zip(ids, budget["projects"]):
            await call("assess_project", project_id=pid, feasibility="FEASIBLE", price_cents=p["cost"])
        await call("advance_budget_phase", budget_id=bid, to="PUBLISHING_PRICES")
        await call("select_projects", budget_id=bid, project_ids=ids)
        await call("advance_budget_phase", budget_id=bid, to="BALLOTING")
        report["budget"] = bid
    return report


# One address per role for the demo (signing in with it gives that role; its code is read at /dev/mail).
DEMO_ACCOUNTS = [
    {"email": "agent@sicoval.example", "role": "agent", "label": "agent (modération, bornes, satisfaction, consultations)"},
    {"email": "operateur@sicoval.example", "role": "operator", "label": "opérateur (santé, lettres mortes, rôles)"},
    {"email": "mairie@labege.example", "role": "organizer", "org": "org-commune-labege",
     "label": "organisateur, Mairie de Labège"},
    {"email": "contact@comite-des-fetes-de-labege.example", "role": "organizer",
     "org": "org-comite-des-fetes-de-labege", "label": "organisateur, Comité des fêtes de Labège"},
]
DEMO_CITIZEN = "habitant@example.org"


async def seed_demo_accounts(rpc, wait: float = 20.0) -> dict:
    """The demo accounts, through the operators' RPC (idempotent: granting the same role again changes nothing).
    The notification service learns the organisations from the agenda's events: an organiser's role waits for them."""
    import asyncio
    import time

    from contracts.errors import BadInput

    operator = {"caller": {"role": "operator", "subject": "parvis-seed"}, "correlation_id": "seed-demo-accounts"}
    deadline = time.monotonic() + wait
    for account in DEMO_ACCOUNTS:
        while True:
            try:
                await rpc.call("notification", "grant_role", context=operator, email=account["email"],
                               role=account["role"], org=account.get("org"))
                break
            except BadInput:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)  # the organisation's announcement is still on its way
    return {"accounts": len(DEMO_ACCOUNTS)}


DEMO_REGIES = [
    {"id": "regie-cantine", "numcli": "123456", "name": "Régie cantine et périscolaire du Sicoval",
     "services": ["cantine", "périscolaire"], "provider": {"provider": "payfip", "payfip_mode": "T"}},
    {"id": "regie-eau", "numcli": "654321", "name": "Régie de l'eau du Sicoval", "services": ["eau"],
     "provider": {"provider": "sandbox", "payfip_mode": "T"}},
]
DEMO_BILLS = [
    {"key": "demo-cantine-1", "regie_id": "regie-cantine", "service": "cantine", "amount": 4250,
     "reference": "CANT2026031", "description": "Cantine de mars — Léa Martin (18 repas)"},
    {"key": "demo-cantine-2", "regie_id": "regie-cantine", "service": "périscolaire", "amount": 1860,
     "reference": "PERI2026032", "description": "Accueil périscolaire de mars — Léa Martin"},
    {"key": "demo-eau-1", "regie_id": "regie-eau", "service": "eau", "amount": 8733,
     "reference": "EAU2026S1", "description": "Facture d'eau, 1er semestre — 12 rue des Écoles, Labège"},
]


async def seed_demo_payments(rpc) -> dict:
    """Two régies (the canteen's through PayFiP, the water's through the sandbox card provider) and open bills
    for the demo citizen. Idempotent: régies by id, bills by their idempotency keys (a day's window; after it,
    `parvis up` makes fresh links for the day, the old ones staying as they are)."""
    from datetime import date, timedelta

    agent = {"caller": {"role": "agent", "subject": "parvis-seed"}, "correlation_id": "seed-demo-payments"}
    for regie in DEMO_REGIES:
        await rpc.call("payment_link", "save_regie", timeout=30.0, context=agent, **regie)
    links = []
    due = (date.today() + timedelta(days=30)).isoformat()
    for bill in DEMO_BILLS:
        spec = {k: v for k, v in bill.items() if k != "key"}
        answer = await rpc.call("payment_link", "create_payment_link", timeout=30.0, context=agent,
                                idempotency_key=f"{bill['key']}-{date.today().isoformat()}",
                                payment={**spec, "email": DEMO_CITIZEN, "due_date": due})
        links.append({"url": answer["payment"]["url"], "regie": bill["regie_id"], "reference": bill["reference"],
                      "amount": bill["amount"]})
    return {"regies": len(DEMO_REGIES), "links": links}
