"""The mix's rules: quality filters, duplicates, the evaluation-leak guard, raw-corpus ratio, budgets."""

import pytest

from synthcpt.config import load_config
from synthcpt.errors import SynthcptError
from synthcpt.s4_generate.base import Document
from synthcpt.s4_generate.dedup import Deduplicator
from synthcpt.s4_generate.filters import duplicated_ngram_share, quality_rejection
from synthcpt.s4_generate.leak import Leak, LeakGuard
from synthcpt.s4_generate.mix import build_mix, raw_copies
from synthcpt.s4_generate.records import make_record

QUESTION = {"question_id": "d1/q0", "question": "Why did the Tr'en leave Korvin's door unlocked and a weapon nearby?",
            "options": ["They were so caught up trying to figure out Korvin's answers that they became careless.",
                        "Their subconscious wanted him gone.", "Yes", "Because the Ruler ordered them to do it."]}
STORY = ("Korvin spent the first night in the cell counting the stones of the wall. In the morning the Tr'en "
         "came back with their questions, and he answered each one with a careful lie that they could not check. ")


def record(text, generator="wrap", n_tokens=None, id=None):
    return make_record(id=id or f"{generator}-{abs(hash(text))}", text=text, generator=generator, style="x",
                       doc_id="d1", n_tokens=n_tokens if n_tokens is not None else len(text.split()))


def settings(*overrides):
    return load_config(None, list(overrides)).generate


def test_leak_guard_catches_the_exam_but_not_the_story():
    guard = LeakGuard.from_questions([QUESTION], [STORY], ngram=8, threshold=0.5)
    assert guard.leaked(STORY) is None
    planted = STORY + " Question: why did the Tr'en leave Korvin's door unlocked, and a weapon nearby?"
    assert guard.leaked(planted) == Leak("question", "d1/q0 question")
    # One option alone is a statement about the story (usually the right answer): it is kept.
    one_option = STORY + "They were so caught up trying to figure out Korvin's answers that they became careless."
    assert guard.leaked(one_option) is None
    # The choice list of the exam, even without its stem, is the exam: dropped.
    choices = one_option + " Their subconscious wanted him gone. Because the Ruler ordered them to do it."
    assert guard.leaked(choices) == Leak("options", "d1/q0 option A, d1/q0 option B, d1/q0 option D")
    assert guard.unguarded == 1  # "Yes" is too short to tell a leak from a mention


def test_a_document_whose_option_is_one_of_its_sentences_keeps_its_records():
    # The demo's case: an option is a sentence of the story, so the story's own text and its rephrasings hold it.
    document = STORY + "Their subconscious wanted him gone, and so the door was left open."
    guard = LeakGuard.from_questions([QUESTION], [document], ngram=8, threshold=0.5)
    assert guard.in_corpus == 1
    quoting = document + " They were so caught up trying to figure out Korvin's answers that they became careless."
    assert guard.leaked(quoting) is None  # the in-corpus option does not count toward the choice list
    docs = [Document("d1", "LOST IN TRANSLATION", document, "Larry M. Harris", 150)]
    mined = {"rc_mined": [record(document, "rc_mined", id="m")]}
    result = build_mix(mined, docs, [QUESTION], settings().mix, seed=0)
    assert result.kept_ids == {"m"} and not result.leaks


def test_leak_guard_threshold():
    words = QUESTION["question"].split()
    half = " ".join(words[: len(words) // 2])  # too few of the question's 8-grams
    assert LeakGuard.from_questions([QUESTION], [STORY], 8, 0.5).leaked(STORY + half) is None
    assert LeakGuard.from_questions([QUESTION], [STORY], 4, 0.3).leaked(STORY + half) is not None


def test_quality_rules():
    assert quality_rejection("   ", 0, 16, 0.15) == "empty"
    assert quality_rejection("Too short.", 3, 16, 0.15) == "too_short"
    assert quality_rejection("I'm sorry, but I cannot rephrase this text. " * 1 + STORY, 60, 16, 0.15) == "refusal"
    assert quality_rejection(STORY + "\nQuestion: Who?\nAnswer:\n", 60, 16, 0.15) == "refusal"
    loop = "The ship flew to Mars and back again. " * 12
    assert duplicated_ngram_share(loop) > 0.9
    assert quality_rejection(loop, 120, 16, 0.15) == "repetition"
    assert duplicated_ngram_share(STORY) == 0.0
    assert quality_rejection(STORY, 60, 16, 0.15) is None


LONGER = STORY + ("On the third day the Ruler himself came down to the cells, tall and grey and silent, and "
                   "asked Korvin what the humans wanted from the planet. Korvin told him that they wanted nothing "
                   "at all, which was true, and that they would take everything, which was also true.")


def test_exact_and_near_duplicates():
    dedup = Deduplicator(threshold=0.8)
    assert dedup.check(LONGER) is None
    assert dedup.check(LONGER.upper().replace(",", "")) == "exact_duplicate"
    assert dedup.check(LONGER.replace("careful", "clever")) == "near_duplicate"
    assert dedup.check("An entirely different text about the crew of the Jinx ship and its repairs.") is None


def test_raw_copies_follow_the_ratio_within_bounds():
    assert raw_copies(1000, 3000, 1.0, 4) == 3
    assert raw_copies(1000, 100_000, 1.0, 4) == 4
    assert raw_copies(1000, 10, 1.0, 4) == 1
    assert raw_copies(1000, 3000, 0.0, 4) == 0


def test_build_mix_counts_every_rejection_by_generator_and_rule():
    docs = [Document("d1", "LOST IN TRANSLATION", STORY * 3, "Larry M. Harris", 150)]
    synthetic = {
        "wrap": [record(STORY, id="a"), record(STORY, id="b"), record(STORY + QUESTION["question"], id="d")],
        "bonito": [record("Korvin lied to the Tr'en about everything, and they believed every word of it for days.",
                          "bonito", id="e")],
    }
    result = build_mix(synthetic, docs, [QUESTION], settings().mix, seed=0)
    stats = result.stats
    # The quality rules ran when the records were made (run_generator); the mix counts only its own rules.
    assert stats.by_generator["wrap"].rejected == {"eval_leak_question": 1, "exact_duplicate": 1}
    assert stats.by_generator["wrap"].records == 1 and stats.by_generator["bonito"].records == 1
    assert [leak["id"] for leak in result.leaks] == ["d"]
    assert stats.raw_copies == 1 and stats.by_generator["raw"].records == 1
    assert {r["generator"] for r in result.records} == {"wrap", "bonito", "raw"}
    assert result.kept_ids == {"a", "e"}
    again = build_mix(synthetic, docs, [QUESTION], settings().mix, seed=0)
    assert [r["id"] for r in again.records] == [r["id"] for r in result.records]


def test_targets_from_tokens_total_and_shares():
    s = settings("generate.generators=[entigraph, wrap, bonito]", "generate.total_tokens=1000",
                 "generate.shares={entigraph: 2}", "generate.tokens={bonito: 50}")
    assert s.targets() == {"entigraph": 667, "wrap": 333, "bonito": 50}
    assert settings().targets() == dict.fromkeys(["entigraph", "wrap", "rc_mined", "rc_llm", "bonito"])


@pytest.mark.parametrize("override, fragment", [
    ("generate.tokens={wrap: 5}", "not selected"),
    ("generate.bonito.task_types=[poetry]", "unknown Bonito task types"),
    ("generate.wrap.styles=[fancy]", "generate.wrap.styles"),
])
def test_bad_settings_are_one_clear_error(override, fragment):
    with pytest.raises(SynthcptError, match=fragment):
        load_config(None, ["generate.generators=[rc_mined]", override])


def test_only_records_passing_the_quality_rules_count_toward_a_target(tokenizer):
    from synthcpt.s4_generate.base import Corpus, GenerationContext, Generator
    from synthcpt.s4_generate.run import run_generator

    looping = "the cell and the stones of the wall " * 12
    texts = [looping, STORY, "", looping, STORY.replace("Korvin", "Vyrko")]

    class Rephrasings(Generator):
        name = "wrap"
        model_written = True

        def records(self):
            return iter(record(t, n_tokens=0) for t in texts)

    ctx = GenerationContext(settings=settings("generate.mix.min_tokens=8"), corpus=Corpus([], []), seed=0,
                            model="default", context_window=None, tokenizer=tokenizer)
    outcome = run_generator(Rephrasings(ctx), engine=None, target=10_000, tokenizer=tokenizer)
    assert [r["text"] for r in outcome.records] == [STORY, STORY.replace("Korvin", "Vyrko")]
    assert outcome.rejected == {"repetition": 2, "empty": 1}
    assert outcome.produced_tokens == sum(r["n_tokens"] for r in outcome.records) > 0
