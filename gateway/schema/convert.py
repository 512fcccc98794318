"""GraphQL input values as the services' contracts read them: the one conversion every mutation uses."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any


def plain(value: Any) -> Any:
    """Input objects become dicts without their unset (None) fields, so the contract's defaults apply; enums
    become their values and datetimes ISO 8601 text (naive ones stay naive: Europe/Paris wall time)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "__strawberry_definition__"):
        return {k: plain(v) for k, v in vars(value).items() if v is not None}
    return value
