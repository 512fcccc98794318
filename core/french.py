"""How a French reader writes amounts: shared by the services (emails, the accountant's files) and the web."""
from __future__ import annotations


def euros(cents: int) -> str:
    """« 1 234,50 € »: a comma, a narrow no-break space between thousands, a no-break space before the sign."""
    whole, rest = divmod(abs(int(cents)), 100)
    return f"{'-' if cents < 0 else ''}{whole:,}".replace(",", "\u202f") + f",{rest:02d}\u00a0€"
