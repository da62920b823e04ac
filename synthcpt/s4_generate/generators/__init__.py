"""Generator plugins: each module defines `PLUGIN`, a `synthcpt.s4_generate.base.Generator` subclass."""
