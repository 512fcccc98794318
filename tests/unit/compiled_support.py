"""What the tests of the compiled GraphQL paths share (test_fastvotes.py, test_fastballots.py, test_fastlinks.py): the
answer Strawberry gives to a request, to compare the compiled path's with."""
from __future__ import annotations

import asyncio

from gateway.errors import map_errors


def strawberry_answer(schema, payload: dict, caller, call, production: bool) -> dict:
    """Strawberry's response (data, and errors mapped as the gateway maps them) to `payload` from `caller`, its
    resolvers calling services through `call(service, method, timeout=None, **kwargs)`."""
    async def go():
        result = await schema.execute(payload["query"], variable_values=payload.get("variables"),
                                      operation_name=payload.get("operationName"),
                                      context_value={"caller": caller, "call": call})
        map_errors(result.errors, production)
        out = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return out
    return asyncio.run(go())
