"""consultation: surveys, consultations and participatory budgets. Pure rules in domain.py (life and participation),
questions.py (forms and responses), budget.py (phases, ballots, winners), results.py (survey counters),
ballots.py (receipts, secret ballots, paper double entry) and pabulib.py (the .pb format)."""
