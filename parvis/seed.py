"""Demo data: the Sicoval's communes, organisations, categories and themes, loaded through RPC.

Idempotent: organisations are upserted by id and an event is emitted only for a new or changed one.
"""
from __future__ import annotations

import json
from importlib import resources

from contracts.agenda import ReferenceData


def demo_data() -> dict:
    raw = json.loads(resources.files("parvis.data").joinpath("demo.json").read_text(encoding="utf-8"))
    return ReferenceData.model_validate({k: raw[k] for k in ("communes", "organizations", "categories", "themes")}).model_dump()


async def seed(rpc) -> dict:
    operator = {"role": "operator", "subject": "parvis-seed"}
    return await rpc.call("agenda", "import_reference_data", timeout=60.0,
                          context={"caller": operator, "correlation_id": "seed-demo-data"}, **demo_data())
