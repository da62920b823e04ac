"""Stage 1, ingest: input files → `ingest/documents.parquet`, `chunks.parquet`, `questions.parquet`."""
