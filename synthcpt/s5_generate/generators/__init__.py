"""Generator plugins: each module defines `PLUGIN`, a `synthcpt.s5_generate.base.Generator` subclass."""
