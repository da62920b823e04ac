"""Pattern mining on hand-written sentences whose tasks are known."""

import random

from synthcpt.prompts import load_prompt
from synthcpt.s5_generate.mining import (
    Templates,
    mine_cause_effect,
    mine_completion,
    mine_definitions,
    mine_nli,
    mine_paraphrase,
    mine_passage,
    mine_word_to_text,
    render,
    split_sentences,
)

LEAK = "The reactor core had been leaking coolant for several days before anyone noticed."
SHUTDOWN = "The engineers decided to shut down the whole station for a complete inspection."
CAPTAIN = "The captain wanted to keep the ship moving at full speed toward the red planet."
CREW = "The crew refused to continue until every repair was complete and properly tested."
MONTHS = "The vessel finally touched the ground after a voyage of many long months in deep space."
TEXT = (f"{LEAK} Therefore, the engineers decided to shut down the whole station for a complete inspection. "
        f"{CAPTAIN} However, the crew refused to continue until every repair was complete and properly tested. "
        "The Tr'en are a species of tall, grey-skinned telepaths from the fourth planet. "
        "After many weeks of travel the ship landed on a barren plain. In other words, the vessel finally touched "
        "the ground after a voyage of many long months in deep space. "
        "Korvin stayed calm throughout the whole long interrogation because he had been trained for exactly "
        "this kind of hostile situation.")


def sentences():
    return split_sentences(TEXT)


def test_nli_labels_follow_the_connective():
    found = {(e.values["premise"], e.values["hypothesis"]): e.values["label"] for e in mine_nli(sentences(), 50)}
    assert found[(LEAK, SHUTDOWN)] == "entailment"
    assert found[(CAPTAIN, CREW)] == "contradiction"
    assert len(found) == 2


def test_cause_and_effect_across_and_inside_sentences():
    found = {(e.values["cause"], e.values["effect"]) for e in mine_cause_effect(sentences(), 50)}
    assert (LEAK, SHUTDOWN) in found
    assert ("He had been trained for exactly this kind of hostile situation.",
            "Korvin stayed calm throughout the whole long interrogation.") in found
    assert len(found) == 2


def test_paraphrase_needs_both_sides_long_enough():
    found = [(e.values["sentence1"], e.values["sentence2"]) for e in mine_paraphrase(sentences(), 40)]
    assert found == [("After many weeks of travel the ship landed on a barren plain.", MONTHS)]
    assert mine_paraphrase(sentences(), 70) == []  # the first sentence is 62 characters


def test_definitions_and_keywords():
    definitions = mine_definitions(sentences(), 50)
    assert [e.values["term"] for e in definitions] == ["the Tr'en"]
    words = mine_word_to_text(sentences(), ["Korvin"], 50)
    korvin = [e for e in words if "Korvin" in e.values["sentence"]]
    assert korvin and korvin[0].values["keywords"].startswith("Korvin, ")
    for example in words:  # every keyword occurs in its sentence
        assert all(k.lower() in example.values["sentence"].lower() for k in example.values["keywords"].split(", "))


def test_completion_splits_a_sentence_in_two():
    for example in mine_completion(sentences(), 50):
        assert f"{example.values['beginning']} {example.values['ending']}" in sentences()


def test_passage_keeps_at_most_max_per_kind_and_renders_every_example():
    templates = Templates.parse(load_prompt("rc/mined.yaml").text, "rc/mined.yaml")
    mined = mine_passage(TEXT, "LOST IN TRANSLATION", "Korvin outwits his captors.", ["Korvin"], 50, 1,
                         random.Random(3))
    assert {"title", "summary", "nli", "cause_effect", "definition", "completion"} <= set(mined.examples)
    assert all(len(v) == 1 for v in mined.examples.values())
    text = render(mined, templates, random.Random(3))
    assert text.startswith(TEXT)
    assert "LOST IN TRANSLATION" in text and "Korvin outwits his captors." in text
    assert any(lead in text for lead in templates.lead_ins)


def test_mining_is_deterministic_for_a_seed():
    templates = Templates.parse(load_prompt("rc/mined.yaml").text, "rc/mined.yaml")

    def once(seed):
        rng = random.Random(seed)
        return render(mine_passage(TEXT, "T", None, [], 50, 2, rng), templates, rng)

    assert once(1) == once(1)
    assert len({once(seed) for seed in range(8)}) > 1  # templates and order vary with the seed
