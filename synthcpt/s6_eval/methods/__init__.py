"""Evaluation method plugins: each module defines `PLUGIN`, a class with `name`, `Settings` (nested as
`eval.<name>`), `prompts(settings)` and `score(ctx) -> records`; see `synthcpt.s6_eval.method`."""
