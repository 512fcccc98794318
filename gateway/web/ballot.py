"""A participatory budget's ballot as the voter fills it in: which headings he sees, and each heading's running total
(spent, left, projects chosen), for "Vérifier mon vote" without JavaScript. It only shows figures: whether a ballot
is valid is the service's to say, when it is cast (`castBudgetBallot`), and its refusal is shown as it comes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadingTotal:
    heading_id: str
    amount_cents: int
    spent_cents: int
    chosen: int
    max_projects: int | None  # approval voting: how many projects one may choose
    knapsack: bool
    min_projects: int | None = None  # approval voting: how few
    least_cents: int | None = None  # knapsack voting: the least a heading's choice must spend, when the rule says

    @property
    def left_cents(self) -> int:
        return self.amount_cents - self.spent_cents

    @property
    def over(self) -> bool:
        """More than the heading allows: its amount (knapsack) or its number of projects (approval)."""
        if self.knapsack:
            return self.spent_cents > self.amount_cents
        return self.max_projects is not None and self.chosen > self.max_projects

    @property
    def under(self) -> bool:
        """Less than the rule asks of a heading voted in (its share of the amount, its number of projects); a heading
        left empty is not voted in."""
        if not self.chosen:
            return False
        if self.knapsack:
            return self.least_cents is not None and self.spent_cents < self.least_cents
        return self.min_projects is not None and self.chosen < self.min_projects

    @property
    def projects_left(self) -> int | None:
        return None if self.max_projects is None else self.max_projects - self.chosen


def least_share(amount_cents: int, percent: int | None) -> int | None:
    """The least a knapsack choice must spend in a heading, as the service rounds it (up, to the cent)."""
    return -(-amount_cents * percent // 100) if percent else None


def shown_headings(budget: dict, choice: str | None) -> tuple[list[dict], bool]:
    """The headings to show, and whether the voter must first choose one: when he may vote in a single heading of
    several, the ballot shows the one he chose (none yet: he chooses)."""
    headings = budget["headings"]
    if budget["maxHeadingsPerVoter"] == 1 and len(headings) > 1:
        picked = [h for h in headings if h["id"] == choice]
        return picked, not picked
    return headings, False


def running_totals(budget: dict, projects: list[dict], chosen: dict[str, list[str]]) -> dict[str, HeadingTotal]:
    """Each heading's total for the projects chosen in it (`chosen`: heading id → project ids); an id that is not a
    project of that heading on the ballot counts for nothing (the service refuses it at casting)."""
    rule = budget["rule"]
    knapsack = rule["kind"] == "KNAPSACK"
    price = {(p["headingId"], p["id"]): p.get("priceCents") or 0 for p in projects}
    out = {}
    for h in budget["headings"]:
        ids = [pid for pid in dict.fromkeys(chosen.get(h["id"], [])) if (h["id"], pid) in price]
        out[h["id"]] = HeadingTotal(h["id"], h["amountCents"], sum(price[(h["id"], pid)] for pid in ids), len(ids),
                                    None if knapsack else (h.get("maxProjects") or rule.get("maxProjects")), knapsack,
                                    None if knapsack else rule.get("minProjects"),
                                    least_share(h["amountCents"], rule.get("minSharePercent")) if knapsack else None)
    return out
