"""The committed SDL and AsyncAPI document are what the code generates now."""
import yaml

from parvis.cli import generated_files


def test_committed_schema_and_asyncapi_are_current():
    stale = [str(p) for p, text in generated_files().items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated files {stale}: run `make schema` (parvis schema) and commit"


def test_asyncapi_document_is_asyncapi_3_and_names_every_contract():
    from contracts import event_contracts, rpc_contracts
    from contracts.asyncapi import PATH

    doc = yaml.safe_load(PATH.read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {ch["address"] for ch in doc["channels"].values()}
    assert set(event_contracts()) <= addresses
    assert set(rpc_contracts()) <= addresses
    for op in doc["operations"].values():
        ref = op["channel"]["$ref"].split("/")[-1]
        assert ref in doc["channels"]
