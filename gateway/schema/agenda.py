"""Agenda GraphQL: reference data (communes, organisations, categories, themes) for now."""
from __future__ import annotations

import enum
from typing import Optional

import strawberry
from strawberry.types import Info


@strawberry.type(description="One of the authority's member communes")
class Commune:
    slug: str
    name: str


@strawberry.enum
class OrganizationKind(enum.Enum):
    COMMUNE = "commune"
    ASSOCIATION = "association"
    AUTHORITY = "authority"


@strawberry.type(description="An organisation that may propose events: a commune, an association, the authority")
class Organization:
    id: strawberry.ID
    slug: str
    name: str
    kind: OrganizationKind
    commune: Optional[str] = strawberry.field(description="slug of its commune")


@strawberry.type(description="An event category")
class Category:
    slug: str
    name: str


@strawberry.type(description="One of the authority's competences, used as a theme")
class Theme:
    slug: str
    name: str


@strawberry.type
class AgendaQuery:
    @strawberry.field(description="The member communes, by name")
    async def communes(self, info: Info) -> list[Commune]:
        return [Commune(**c) for c in await info.context["call"]("agenda", "list_communes")]

    @strawberry.field(description="Organisations, optionally of one kind")
    async def organizations(self, info: Info, kind: Optional[OrganizationKind] = None) -> list[Organization]:
        rows = await info.context["call"]("agenda", "list_organizations", kind=kind.value if kind else None)
        return [Organization(id=r["id"], slug=r["slug"], name=r["name"], kind=OrganizationKind(r["kind"]),
                             commune=r.get("commune")) for r in rows]

    @strawberry.field(description="Event categories")
    async def categories(self, info: Info) -> list[Category]:
        return [Category(**c) for c in await info.context["call"]("agenda", "list_categories")]

    @strawberry.field(description="Themes: the authority's competences")
    async def themes(self, info: Info) -> list[Theme]:
        return [Theme(**c) for c in await info.context["call"]("agenda", "list_themes")]


@strawberry.type
class AgendaMutation:
    pass


@strawberry.type
class AgendaSubscription:
    pass
