"""A search run's directory, read and written without Ray.

``recorder`` appends every report to ``results.jsonl`` and reads it back as one record
per trial; ``export`` writes ``best/`` (the winner's configs and ``summary.json``) and
``results.csv``; ``study`` rebuilds the Optuna study as ``study.db``; ``report`` writes
``report.html`` and its PNG plots (``report_plots``); ``confirmation`` and ``verdict``
read the confirmation runs and judge the winner against the base config;
``param_labels`` names params and values as a person reads them; ``mmengine_export``
writes the winner's runtime in mmengine spelling (the backend spells it); ``run_lock``
keeps two drivers off one run; ``stored_run`` fetches and uploads a run kept at a
storage URI. ``rt3d-tune export RUN_DIR`` and ``rt3d-tune report RUN_DIR`` run
these on any run directory, finished or not.
"""
