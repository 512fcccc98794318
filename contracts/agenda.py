"""Agenda service contracts: reference data (communes, organisations, categories, themes) for now."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import Empty, EventContract, Model, RpcContract
from contracts.platform import declare_ping

SERVICE = "agenda"
Slug = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)


class Commune(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class Organization(Model):
    id: str = Field(min_length=1, max_length=80)
    slug: str = Slug
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["commune", "association", "authority"]
    commune: str | None = Field(default=None, description="slug of the commune it belongs to")
    contact_email: str | None = Field(default=None, max_length=254)


class Category(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class Theme(Model):
    slug: str = Slug
    name: str = Field(min_length=1, max_length=120)


class ReferenceData(Model):
    communes: list[Commune]
    organizations: list[Organization]
    categories: list[Category]
    themes: list[Theme]


class ImportReport(Model):
    communes: int
    organizations_created: int
    organizations_updated: int
    organizations_unchanged: int
    categories: int
    themes: int


class ListOrganizations(Model):
    kind: Literal["commune", "association", "authority"] | None = None


class OrganizationUpserted(EventContract):
    event_type = "agenda.organization_upserted"
    summary = "An organisation (commune, association) was registered or its details changed"
    id: str
    slug: str
    name: str
    kind: Literal["commune", "association", "authority"]
    commune: str | None = None
    contact_email: str | None = None


PING = declare_ping(SERVICE)
IMPORT_REFERENCE_DATA = RpcContract(SERVICE, "import_reference_data", ReferenceData, ImportReport,
                                    "Upsert communes, organisations, categories and themes (idempotent)")
LIST_COMMUNES = RpcContract(SERVICE, "list_communes", Empty, list[Commune], "The member communes, by name")
LIST_ORGANIZATIONS = RpcContract(SERVICE, "list_organizations", ListOrganizations, list[Organization],
                                 "Organisations that may propose events")
LIST_CATEGORIES = RpcContract(SERVICE, "list_categories", Empty, list[Category], "Event categories")
LIST_THEMES = RpcContract(SERVICE, "list_themes", Empty, list[Theme], "The authority's competences, used as themes")
