"""Pure rules of the agenda reference data, and configuration parsing."""
import pytest

from contracts.agenda import Organization
from parvis import config
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


def test_retry_delays_are_parsed_and_checked():
    assert config._retry_delays("1, 5,30") == (1.0, 5.0, 30.0)
    with pytest.raises(ValueError):
        config._retry_delays("1,-2")


def test_production_requires_a_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("PARVIS_ENV", "production")
    monkeypatch.delenv("PARVIS_SECRET", raising=False)
    monkeypatch.setenv("PARVIS_DATA_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="PARVIS_SECRET"):
        config.load()


def test_dev_secret_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("PARVIS_SECRET", raising=False)
    monkeypatch.delenv("PARVIS_ENV", raising=False)
    monkeypatch.setenv("PARVIS_DATA_DIR", str(tmp_path))
    first = config.load().secret
    assert len(first) > 40 and config.load().secret == first
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0


def test_demo_data_holds_the_36_communes_as_organisations():
    from parvis.seed import demo_data

    data = demo_data()
    assert len(data["communes"]) == 36
    communes = [o for o in data["organizations"] if o["kind"] == "commune"]
    assert {o["commune"] for o in communes} == {c["slug"] for c in data["communes"]}
    assert any(o["kind"] == "association" for o in data["organizations"])
    assert len(data["themes"]) == 15 and data["categories"]
