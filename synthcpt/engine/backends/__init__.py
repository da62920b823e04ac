"""Engine backend plugins: each module defines `PLUGIN`, a `synthcpt.engine.backend.Backend` subclass."""
