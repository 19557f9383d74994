"""A search run's directory, read and written without Ray.

``recorder`` appends every report to ``results.jsonl`` and reads it back as one record
per trial; ``export`` writes ``best/`` (the winner's configs and ``summary.json``) and
``results.csv``; ``study`` rebuilds the Optuna study as ``study.db``; ``report`` writes
``report.html`` and its PNG plots; ``mmengine_export`` writes the winner's runtime in
mmengine spelling. ``rt3d-tune export RUN_DIR`` and ``rt3d-tune report RUN_DIR`` run
these on any run directory, finished or not.
"""
