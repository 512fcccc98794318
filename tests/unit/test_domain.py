"""Pure rules of the agenda reference data, and the demo data."""
import pytest

from contracts.agenda import Organization
from services.agenda import domain


@pytest.mark.parametrize("name, slug", [
    ("Belbèze-de-Lauragais", "belbeze-de-lauragais"),
    ("Labège", "labege"),
    ("Comité des fêtes de Labège", "comite-des-fetes-de-labege"),
    ("Jardins partagés d'Escalquens", "jardins-partages-d-escalquens"),
])
def test_slugify(name, slug):
    assert domain.slugify(name) == slug


def test_an_organization_is_changed_only_when_a_field_differs():
    org = Organization(id="o", slug="o", name="O", kind="association", commune="labege")
    assert domain.organization_changed(None, org)
    same = {"_id": "o", **org.model_dump(), "updated_at": "x"}
    assert not domain.organization_changed(same, org)
    assert domain.organization_changed({**same, "name": "Old"}, org)


def test_demo_data_holds_the_36_communes_as_organisations():
    from parvis.seed import demo_data

    data = demo_data()
    assert len(data["communes"]) == 36
    communes = [o for o in data["organizations"] if o["kind"] == "commune"]
    assert {o["commune"] for o in communes} == {c["slug"] for c in data["communes"]}
    assert any(o["kind"] == "association" for o in data["organizations"])
    assert len(data["themes"]) == 15 and data["categories"]


def test_commune_names_are_elided_before_a_vowel():
    """French: "Mairie d'Aureville", not "Mairie de Aureville"."""
    import re

    from parvis.seed import demo_data

    names = [o["name"] for o in demo_data()["organizations"]]
    assert "Mairie d'Aureville" in names and "Mairie de Labège" in names
    assert not [n for n in names if re.search(r"\bde [AEIOUYÂÉÈÊÎÔÛaeiouyâéèêîôûh]", n)]
