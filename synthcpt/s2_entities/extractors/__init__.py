"""Entity extractor plugins: each module defines `PLUGIN`; see `synthcpt.s2_entities.extractor`."""
