"""The CLI's commands besides one per stage: each module has `register(app)`. They sit above the stages
(they read configs and run folders), so no stage package imports back up into the CLI."""
