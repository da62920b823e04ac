"""Entity extractor plugins: each module defines `PLUGIN`, a `synthcpt.s2_entities.extractor.Extractor` subclass."""
