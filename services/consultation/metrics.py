"""The consultation service's business metrics: responses and ballots by channel, time to vote, consultations open,
paper sheets whose two entries disagree. A module of its own so that the service, the casting rounds, the paper
entries and the clock share them."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.logjson import SLO_BUCKETS

# kind: `response` (a survey's or consultation's answers) or `ballot` (a budget's); channel: `online`, `paper` (a
# paper ballot counted from an agreed sheet or booth total), `booth` or `letter` (a voter checked in by an agent).
PARTICIPATIONS = Counter("parvis_consultation_participations_total",
                         "Responses and ballots counted, by kind (response, ballot) and channel (online, paper, booth, "
                         "letter)", ["kind", "channel"])
TIME_TO_VOTE = Histogram("parvis_consultation_time_to_vote_seconds",
                         "From a citizen's request to his response or ballot stored and counted", ["kind"],
                         buckets=SLO_BUCKETS)
CAST_ROUND = Histogram("parvis_consultation_cast_round_ballots", "Secret ballots written by one round of writes",
                       [], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
CAST_ROUND_SECONDS = Histogram("parvis_consultation_cast_round_seconds",
                               "Time a round of secret ballots takes to write (participations, ballots, counts)", [],
                               buckets=SLO_BUCKETS)
OPEN = Gauge("parvis_consultation_open", "Consultations open now, by kind (SURVEY, CONSULTATION, BUDGET)", ["kind"])
PAPER_MISMATCHES = Gauge("parvis_consultation_paper_mismatches",
                         "Paper sheets whose entries disagree, kept out of the count until resolved", [])
REFUSED = Counter("parvis_consultation_refused_total",
                  "Responses and ballots refused, by reason (already_voted, invalid, closed, not_allowed)", ["reason"])
