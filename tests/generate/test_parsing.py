"""Parsers on the awkward outputs models really produce."""

import pytest

from synthcpt.s5_generate.generators.bonito import parse_raw_pair, parse_structured_pair, with_context
from synthcpt.s5_generate.parsing import (
    complete_items,
    extract_json,
    parse_qa_pairs,
    qa_pairs_from_json,
    strip_preamble,
    trim_truncated,
)

BODY = "The ship reached Mars after nine months. Its crew of four survived the landing."


@pytest.mark.parametrize("raw", [
    f"Here is a paraphrase of the text:\n\n{BODY}",
    f"Sure! Here's the rewritten paragraph:\n{BODY}\n\nI hope this helps!",
    f"**Paraphrased version:**\n{BODY}",
    f"Rephrased text:\n\n{BODY}\nLet me know if you need anything else.",
    f"Here is a simpler version: {BODY}",
    f'"{BODY}"',
    BODY,
])
def test_preambles_and_closers_are_stripped(raw):
    assert strip_preamble(raw) == BODY


def test_text_that_merely_starts_like_a_preamble_is_kept():
    text = "Here is where the story begins: on a cold morning, Korvin woke in a cell."
    assert strip_preamble(text).startswith("Here is where") or strip_preamble(text).startswith("on a cold")
    story = "Sure enough, the Ruler came back the next day.\nHe had questions."
    assert strip_preamble(story) == story


def test_truncated_text_is_cut_back_to_its_last_sentence():
    assert trim_truncated("The crew slept. Then the alarm rang and every") == "The crew slept."
    assert trim_truncated('He said "Stop!" and the ship') == 'He said "Stop!"'
    assert trim_truncated("no sentence end at all") == ""


def test_json_in_prose_and_in_fences():
    assert extract_json('Sure, here it is: {"a": [1, 2]} -- done') == {"a": [1, 2]}
    assert extract_json('```json\n[{"q": "x"}]\n```') == [{"q": "x"}]
    assert extract_json("Sets like {this} are not JSON {") is None


def test_qa_pairs_in_several_layouts():
    text = ("Sure! Here are the questions:\n1. **Question:** Who flew the ship?\n**Answer:** Captain Kane flew it.\n\n"
            "Q2: Where did it land?\nA2: It landed on Mars.\n")
    assert parse_qa_pairs(text) == [("Who flew the ship?", "Captain Kane flew it."),
                                    ("Where did it land?", "It landed on Mars.")]


def test_truncated_last_answer_is_dropped_and_unanswered_questions_ignored():
    text = "Question: Who?\nAnswer: Kane.\nQuestion: Why did he\nQuestion: Where?\nAnswer: On Mars, near the"
    assert parse_qa_pairs(text, truncated=True) == [("Who?", "Kane.")]
    assert parse_qa_pairs(text, truncated=False)[-1] == ("Where?", "On Mars, near the")


def test_qa_pairs_from_json_in_prose():
    text = 'Here you go: {"questions": [{"question": "Who?", "answer": "Kane."}, {"question": "", "answer": "x"}]}'
    assert parse_qa_pairs(text) == [("Who?", "Kane.")]


def test_qa_pairs_from_structured_json():
    value = {"questions": [{"question": "Who?", "answer": "**Kane**."}, {"question": " ", "answer": "x"}, "Why?"]}
    assert qa_pairs_from_json(value) == [("Who?", "Kane.")]
    assert qa_pairs_from_json({"question": "Who?", "answer": "Kane."}) == [("Who?", "Kane.")]
    assert qa_pairs_from_json("Who? Kane.") == [] and qa_pairs_from_json({"questions": []}) == []


def test_complete_items_of_a_json_answer_cut_off_by_max_tokens():
    cut = '{"questions": [{"question": "Who {was} it?", "answer": "Kane."}, {"question": "Why", "ans'
    assert complete_items(cut) == [{"question": "Who {was} it?", "answer": "Kane."}]
    assert complete_items('{"questions": [{"question": "Wh') == [] and complete_items("no JSON here") == []


def test_instruction_pairs_from_structured_json_keep_their_layout():
    instruction = "Which option is right?\nA. Mars\nB. Venus"
    assert parse_structured_pair([{"instruction": f" {instruction} ", "response": "A"}]) == (instruction, "A")
    assert parse_structured_pair([{"instruction": "Who is Korvin?", "response": "  "}]) is None  # empty response
    assert parse_structured_pair([["Who is Korvin?", "A prisoner."]]) is None  # not an object
    assert parse_structured_pair(None) is None  # the JSON did not parse


def test_bonito_raw_format():
    assert parse_raw_pair("Answer the question about {{context}}\nWho?<|pipe|>Kane") == \
        ("Answer the question about {{context}}\nWho?", "Kane")
    assert parse_raw_pair("no separator here") is None
    assert parse_raw_pair("a<|pipe|>b<|pipe|>c") is None
    assert parse_raw_pair("instruction only<|pipe|>  ") is None
    assert with_context("Read: {{context}}\nWho?", "CTX") == "Read: CTX\nWho?"
    assert with_context("Who flew the ship?", "CTX") == "CTX\n\nWho flew the ship?"


def test_a_truncated_relation_keeps_its_whole_sections_only():
    from synthcpt.s5_generate.generators.entigraph import whole_sections

    complete = ("### Discussion of Strike in relation to Cob\nCob is the cook. He feeds the crew.\n\n"
                "### Discussion of Strike in relation to Jinx\nThe Jinx is the ship.\n\n")
    cut = complete + "### Discussion of Interaction between Cob and Jinx in context of Strike\nCob and the Jin"
    assert whole_sections(cut) == complete.rstrip()
    assert whole_sections(complete + "### Questions") == complete.rstrip()
    assert whole_sections("No sections here. The second sentence is cut off mid") == "No sections here."
