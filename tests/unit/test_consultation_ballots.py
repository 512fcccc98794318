"""Pure helpers of secrecy, receipts and paper: receipt codes, the secure shuffle, the secret ballot document, what is
published against a receipt, and double entry of paper sheets."""
import re
from collections import Counter
from datetime import datetime, timezone

import pytest

from contracts.consultation import Answer, EnterPaperTotals, HeadingBallot, MatrixAnswer, OptionTotal, PaperBallot
from contracts.consultation import ProjectTotal
from contracts.errors import BadInput, Conflict
from services.consultation import ballots
from tests.unit.consultation_samples import bytes_source

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


# -- receipt codes ------------------------------------------------------------------------------------------
def test_receipt_codes_are_short_unambiguous_and_come_from_the_source_given():
    code = ballots.new_receipt_code(bytes_source(1))
    assert CODE.match(code) and not set(code) & set("ILOU")
    assert code == ballots.new_receipt_code(bytes_source(1)), "deterministic with a deterministic source"
    assert code != ballots.new_receipt_code(bytes_source(2))
    many = {ballots.new_receipt_code() for _ in range(5000)}
    assert len(many) == 5000 and all(CODE.match(c) for c in many)


def test_what_a_voter_types_is_read_back_and_mistakes_are_caught():
    code = ballots.new_receipt_code(bytes_source(3))
    assert ballots.normalise_receipt_code(f"  {code.lower().replace('-', ' ')} ") == code
    spoken = code.replace("0", "O").replace("1", "l")
    assert ballots.normalise_receipt_code(spoken) == code, "O read as 0, I and L as 1"
    assert ballots.normalise_receipt_code(code[:-1]) is None
    assert ballots.normalise_receipt_code(code + "7") is None
    assert ballots.normalise_receipt_code("UUUU-UUUU-UUUU") is None
    with pytest.raises(BadInput, match="Code de reçu invalide") as err:
        ballots.parse_receipt_code("ABCD-EFGH-JKMN")
    assert err.value.field == "receipt_code"


def test_the_check_character_catches_every_wrong_character_and_nearly_every_swap():
    code = ballots.new_receipt_code(bytes_source(4)).replace("-", "")
    for i in range(len(code)):
        for ch in ballots.ALPHABET:
            if ch != code[i]:
                assert ballots.normalise_receipt_code(code[:i] + ch + code[i + 1:]) is None
    missed = []
    payloads = [ballots.new_receipt_code(bytes_source(s)).replace("-", "") for s in range(200)]
    for raw in payloads:
        for i in range(len(raw) - 1):
            if raw[i] != raw[i + 1]:
                swapped = raw[:i] + raw[i + 1] + raw[i] + raw[i + 2:]
                if ballots.normalise_receipt_code(swapped) is not None:
                    missed.append({raw[i], raw[i + 1]})
    assert all(pair == {"0", "Z"} for pair in missed), "Luhn mod N misses only swapping the first and last symbols"


# -- randomness ---------------------------------------------------------------------------------------
def test_a_secure_shuffle_is_a_permutation_and_reproducible_with_a_given_source():
    items = list(range(100))
    mixed = ballots.shuffled(items, bytes_source(5))
    assert sorted(mixed) == items and mixed != items
    assert mixed == ballots.shuffled(items, bytes_source(5))
    assert ballots.shuffled([], bytes_source(5)) == [] and ballots.shuffled([1], bytes_source(5)) == [1]
    firsts = Counter(ballots.shuffled("abc")[0] for _ in range(3000))
    assert set(firsts) == {"a", "b", "c"} and min(firsts.values()) > 800, "roughly uniform with the real source"
    assert all(0 <= ballots.random_below(7, bytes_source(s)) < 7 for s in range(50))


# -- secret ballots ----------------------------------------------------------------------------------------
VOTER = {"citizen": "cit-8f2a", "email": "jeanne@exemple.fr", "key": "3fa9c1" * 10}
CAST_AT = datetime(2026, 5, 12, 18, 42, 7, tzinfo=timezone.utc)


def test_a_secret_ballot_carries_nothing_that_joins_it_to_its_voter():
    receipt = ballots.new_receipt_code(bytes_source(6))
    doc = ballots.secret_ballot("b1", receipt, headings=[HeadingBallot(heading_id="labege", project_ids=["p1", "p2"])],
                                random_bytes=bytes_source(6))
    assert set(doc) == {"_id", "consultation_id", "receipt", "headings"}
    assert re.fullmatch(r"[0-9a-f]{32}", doc["_id"])
    assert ballots.identity_leaks(doc, VOTER.values()) == []
    record = ballots.participation_record("b1", VOTER["key"], "WEB", CAST_AT)
    assert record["_id"] == f"b1:{VOTER['key']}", "one per voter and consultation: a unique key, not a read"
    assert receipt not in str(record) and "p1" not in str(record)
    assert ballots.identity_leaks(record, VOTER.values()) == ["_id", "voter", "at"], "the record does name its voter"


def test_identity_leaks_finds_ids_hashes_and_any_time_anywhere():
    doc = {"a": [{"b": "x-cit-8f2a-y"}], "c": CAST_AT.date(), "d": {"e": CAST_AT}, "f": 3, "g": "clean"}
    assert ballots.identity_leaks(doc, VOTER.values()) == ["a.0.b", "c", "d.e"]


def test_a_secret_survey_ballot_is_published_without_its_free_texts():
    answers = [Answer(question_id="uses", choices=["yes"]), Answer(question_id="name", text="12 rue des Lilas"),
               Answer(question_id="when", choices=["other"], other_text="Avec ma voisine Mme Dupuis"),
               Answer(question_id="rating", rating=4),
               Answer(question_id="grid", rows=[MatrixAnswer(row_id="welcome", choices=["good"])])]
    public = ballots.public_content(answers)
    assert [a.question_id for a in public] == ["uses", "when", "rating", "grid"]
    assert "Lilas" not in str(public) and "Dupuis" not in str(public)
    doc = ballots.secret_ballot("c1", "X", answers=public, random_bytes=bytes_source(8))
    assert doc["answers"][1] == {"question_id": "when", "choices": ["other"]}


# -- paper -------------------------------------------------------------------------------------------------
def test_paper_is_entered_while_open_and_after_closing_until_results_are_published():
    ballots.check_paper_entry_allowed("OPEN", False)
    ballots.check_paper_entry_allowed("CLOSED", False)
    for state, published in (("SCHEDULED", False), ("RESULTS_PUBLISHED", True), ("ARCHIVED", False)):
        with pytest.raises(Conflict, match="jusqu'à la publication des résultats"):
            ballots.check_paper_entry_allowed(state, published)


def check_budget_ballot(b: PaperBallot) -> dict:
    if any(pid.startswith("x") for h in b.headings for pid in h.project_ids):
        raise BadInput("Projet inconnu : « x ».", "headings.labege.x")
    return {"headings": [h.model_dump() for h in b.headings]}


def test_a_sheet_is_entered_ballot_by_ballot_with_blank_and_null_papers():
    sheet = [PaperBallot(headings=[HeadingBallot(heading_id="labege", project_ids=["p1"])]),
             PaperBallot(blank=True), PaperBallot(null=True)]
    assert ballots.sheet_content(sheet, check_budget_ballot) == [
        {"headings": [{"heading_id": "labege", "project_ids": ["p1"]}]}, {"blank": True}, {"null": True}]
    with pytest.raises(BadInput) as err:
        ballots.sheet_content(sheet + [PaperBallot(headings=[HeadingBallot(heading_id="labege", project_ids=["x"])])],
                              check_budget_ballot)
    assert err.value.field == "ballots.4.headings.labege.x"
    assert err.value.message == "Bulletin 4 : Projet inconnu : « x ». S'il est ainsi sur le papier, saisissez-le comme nul."
    with pytest.raises(BadInput, match="une seule de ces possibilités"):
        ballots.sheet_content([PaperBallot(blank=True, null=True)], check_budget_ballot)
    with pytest.raises(BadInput, match="Bulletin 1 : il est blanc, ou nul, ou porte des choix"):
        ballots.sheet_content([PaperBallot(null=True, headings=[HeadingBallot(heading_id="labege")])], check_budget_ballot)


def test_consuls_typed_ballot_sheets_are_read():
    assert ballots.parse_ballot_sheet_text("p1,p2;p3\n p4 , p5 ;;\n") == [["p1", "p2"], ["p3"], ["p4", "p5"]]


def test_two_entries_are_compared_by_path():
    first = [{"headings": [{"heading_id": "labege", "project_ids": ["p1", "p2"]}]}, {"blank": True}]
    second = [{"headings": [{"heading_id": "labege", "project_ids": ["p1", "p3"]}]}, {"null": True}]
    assert [(d.path, d.first, d.second) for d in ballots.compare_entries(first, second)] == [
        ("1.headings.1.project_ids", "p1,p2", "p1,p3"), ("2.blank", "True", None), ("2.null", None, "True")]
    t1 = ballots.totals_content(EnterPaperTotals(consultation_id="c", booth_id="b", sheet_ref="1", ballots=40, blank=1,
                                                 projects=[ProjectTotal(project_id="p1", votes=12)],
                                                 options=[OptionTotal(question_id="q", row_id="r", option_id="o",
                                                                      votes=3)]))
    t2 = {**t1, "projects": {"p1": 21}}
    assert t1["options"] == {"q:r:o": 3}
    assert [(d.path, d.first, d.second) for d in ballots.compare_entries(t1, t2)] == [("projects.p1", "12", "21")]


def test_double_entry_counts_a_sheet_once_two_agents_agree():
    x, y = {"projects": {"p1": 12}}, {"projects": {"p1": 21}}
    assert ballots.double_entry([("agent-a", x)]).status == "AWAITING_SECOND_ENTRY"
    assert ballots.double_entry([("agent-a", y), ("agent-a", x)]).status == "AWAITING_SECOND_ENTRY", \
        "an agent correcting himself is still one agent"
    matched = ballots.double_entry([("agent-a", x), ("agent-b", x)])
    assert (matched.status, matched.agreed) == ("MATCHED", x)
    mismatch = ballots.double_entry([("agent-a", x), ("agent-b", y)])
    assert mismatch.status == "MISMATCH" and mismatch.agreed is None
    assert [(d.path, d.first, d.second) for d in mismatch.differences] == [("projects.p1", "12", "21")]
    resolved = ballots.double_entry([("agent-a", x), ("agent-b", y), ("agent-c", y)])
    assert (resolved.status, resolved.agreed) == ("MATCHED", y), "a third entry settles it"
    fixed = ballots.double_entry([("agent-a", x), ("agent-b", y), ("agent-b", x)])
    assert (fixed.status, fixed.agreed) == ("MATCHED", x), "the second agent corrected his entry"
    z = {"projects": {"p1": 22}}
    again = ballots.double_entry([("agent-a", x), ("agent-b", y), ("agent-a", z)])
    assert [(d.first, d.second) for d in again.differences] == [("21", "22")], "the latest two, the older first"
    split = ballots.double_entry([("a", x), ("b", x), ("c", y), ("d", y)])
    assert split.status == "MISMATCH", "two agreeing pairs that disagree: nobody knows"
