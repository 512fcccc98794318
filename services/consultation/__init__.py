"""consultation: surveys, consultations and participatory budgets. Pure rules in domain.py (life and participation),
questions.py and revisions.py (forms, responses, typo fixes), phases.py and budget.py (a budget's phases, ballots and
winners), results.py (survey counters), ballots.py (receipts, secret ballots, paper double entry) and pabulib.py
(the .pb format)."""
