"""Stage 7, report: `run_dir/report.html` and `run_dir/report.md` from everything in the run folder.

The report reads the run folder alone and shows whatever stages have produced; `synthcpt report`
rebuilds it at any time, also for a run whose later stages have not run.
"""
