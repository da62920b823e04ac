"""Evaluation method plugins: each module defines `PLUGIN`, a `synthcpt.s7_eval.method.Method` subclass."""
