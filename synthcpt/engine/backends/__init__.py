"""Engine backend plugins: each module defines `PLUGIN`, a class implementing `synthcpt.engine.backend.Backend`."""
