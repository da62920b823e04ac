"""The mix's rules: quality filters, duplicates, the evaluation-leak guard, raw-corpus ratio, budgets."""

import pytest

from synthcpt.config import load_config
from synthcpt.errors import SynthcptError
from synthcpt.questions import QAItem
from synthcpt.s5_generate.base import Document
from synthcpt.s5_generate.dedup import Deduplicator
from synthcpt.s5_generate.filters import duplicated_ngram_share, quality_rejection
from synthcpt.s5_generate.leak import Leak, LeakGuard
from synthcpt.s5_generate.mix import build_mix, raw_copies
from synthcpt.s5_generate.records import make_record

QUESTION = QAItem("d1/q0", "d1", "Why did the Tr'en leave Korvin's door unlocked and a weapon nearby?",
                  ("They were so caught up trying to figure out Korvin's answers that they became careless.",
                   "Their subconscious wanted him gone.", "Yes", "Because the Ruler ordered them to do it."),
                  ("A",), "quality")
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
    words = QUESTION.question.split()
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
        "wrap": [record(STORY, id="a"), record(STORY, id="b"), record(STORY + QUESTION.question, id="d")],
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
    from synthcpt.s5_generate.base import Corpus, GenerationContext, Generator
    from synthcpt.s5_generate.run import run_generator

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


def qa_record(question, doc_id="d1", index=0):
    return make_record(id=f"qa-{index}", text=f"STORY\nQuestion: {question}\nAnswer: because", generator="qa",
                       style="reason", doc_id=doc_id, n_tokens=12, question=question)


def test_a_pair_that_rewords_an_exam_question_leaks():
    guard = LeakGuard.from_questions([QUESTION], [STORY], ngram=8, threshold=0.5, question_similarity=85)
    reworded = "Why did the Tr'en leave a weapon nearby and Korvin's door unlocked?"
    assert guard.leaked(f"Question: {reworded}") is None  # the word order defeats the n-gram rule...
    assert guard.same_question(reworded) == Leak("same_question", "d1/q0 question")  # ...not the question's
    assert guard.same_question("Why did Korvin count the stones of the wall?") is None
    assert guard.same_question("") is None  # a record not written about a question
    docs = [Document("d1", "LOST IN TRANSLATION", STORY, "Larry M. Harris", 40)]
    pairs = {"qa": [qa_record(reworded, index=0), qa_record("Why did Korvin count the stones of the wall?", index=1)]}
    result = build_mix(pairs, docs, [QUESTION], settings().mix, seed=0, qa_generators={"qa"})
    assert result.kept_ids == {"qa-1"}
    assert result.stats.by_generator["qa"].rejected == {"eval_leak_same_question": 1}
    assert result.leaks == [{"id": "qa-0", "generator": "qa", "reason": "same_question",
                             "evaluation_text": "d1/q0 question"}]


def lengths(generator: str, sizes: list[int]) -> list[dict]:
    """Records of `generator` with the given token counts, distinct texts (nothing is a duplicate)."""
    return [make_record(id=f"{generator}-{i}", text=" ".join(f"{generator}{i}w{j}" for j in range(n)),
                        generator=generator, style="x", doc_id="d1", n_tokens=n,
                        question=f"{generator} question {i}?" if generator == "qa" else "")
            for i, n in enumerate(sizes)]


@pytest.mark.parametrize("qa_sizes, focal_sizes, wrap_sizes", [
    ([40] * 30, [300, 250, 400], [100] * 5),     # QA in excess: its tail is cut
    ([35, 50, 20], [300, 250, 400] * 4, [120] * 9),  # documents in excess: each cut at the same fraction
])
def test_the_mix_holds_the_qa_share_within_one_record(qa_sizes, focal_sizes, wrap_sizes):
    docs = [Document("d1", "LOST IN TRANSLATION", STORY, "Larry M. Harris", 40)]
    synthetic = {"qa": lengths("qa", qa_sizes), "focal": lengths("focal", focal_sizes),
                 "wrap": lengths("wrap", wrap_sizes)}
    for share in (0.5, 0.25):
        mix = settings(f"generate.mix.qa_share={share}", "generate.mix.raw_ratio=0").mix
        result = build_mix(synthetic, docs, [], mix, seed=0, qa_generators={"qa"})
        kept = {g: [r for r in rows if r["id"] in result.kept_ids] for g, rows in synthetic.items()}
        qa = sum(r["n_tokens"] for r in kept["qa"])
        documents = sum(r["n_tokens"] for g in ("focal", "wrap") for r in kept[g])
        cut = {g: result.stats.by_generator[g].rejected.get("over_qa_share", 0) for g in synthetic}
        if cut["qa"]:  # QA was cut: it holds its share of the documents, less than one QA record over
            assert 0 <= qa - share / (1 - share) * documents < max(qa_sizes)
            assert not cut["focal"] and not cut["wrap"]
        else:  # documents were cut, each generator to the same fraction of its own tokens
            assert cut["focal"] or cut["wrap"]
            assert 0 <= documents - (1 - share) / share * qa < max(focal_sizes + wrap_sizes)
            fractions = [sum(r["n_tokens"] for r in kept[g]) / sum(r["n_tokens"] for r in synthetic[g])
                         for g in ("focal", "wrap")]
            assert abs(fractions[0] - fractions[1]) < max(focal_sizes) / sum(focal_sizes)
        assert result.stats.qa_share == round(qa / (qa + documents), 4)
        # What is kept of each generator is a prefix of its records (the budget order).
        for g, rows in synthetic.items():
            assert kept[g] == rows[:len(kept[g])]
    # Without a share, nothing is cut.
    result = build_mix(synthetic, docs, [], settings("generate.mix.qa_share=null").mix, seed=0, qa_generators={"qa"})
    assert "over_qa_share" not in result.stats.rejected


def test_total_tokens_are_split_by_the_qa_share():
    both = settings("generate.generators=[qa, focal, wrap]", "generate.total_tokens=1000",
                    "generate.shares={wrap: 3}")
    assert both.targets() == {"qa": 500, "focal": 125, "wrap": 375}
    assert settings("generate.generators=[qa, focal]", "generate.total_tokens=4000",
                    "generate.mix.qa_share=0.25").targets() == {"qa": 1000, "focal": 3000}
    # Documents alone, or the share turned off: one budget for all.
    assert settings("generate.generators=[focal, wrap]", "generate.total_tokens=1000").targets() == {
        "focal": 500, "wrap": 500}
    assert settings("generate.generators=[qa, focal]", "generate.total_tokens=1000",
                    "generate.mix.qa_share=null").targets() == {"qa": 500, "focal": 500}
    # A generator with its own `tokens` takes none of total_tokens.
    assert settings("generate.generators=[qa, focal]", "generate.total_tokens=1000",
                    "generate.tokens={qa: 100}").targets() == {"qa": 100, "focal": 1000}
