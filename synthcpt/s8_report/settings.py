"""The report stage's settings."""

from __future__ import annotations

from pydantic import Field

from synthcpt.section import Section


class ReportSettings(Section):
    samples: int = Field(3, ge=0, description="Synthetic text samples shown per generator.")
    sample_chars: int = Field(1500, gt=0, description="Longest sample shown, in characters (longer ones are cut).")
    changed_answers: int = Field(20, ge=0, description="Questions listed per direction whose answer changed "
                                                       "with training (base wrong → trained right, and back).")
