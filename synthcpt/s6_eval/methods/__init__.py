"""Evaluation method plugins: each module defines `PLUGIN`, a `synthcpt.s6_eval.method.Method` subclass."""
