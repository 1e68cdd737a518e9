"""The keys of the user attributes a sweep stores in its optuna trials, one name each.

The strings are the stored format: a study written by an earlier version is read with them, so
they never change. A cell's trial holds from its claim on (:func:`~fusionlab.sweep.store.claim`)
``VARIANT``, ``SEED``, ``CELL`` (the cell key), ``RUN_ID`` (the launch), ``DEVICE``, the worker's
``HOST`` and ``PID``, ``CLAIM`` (the token that finds the new trial), ``HEARTBEAT`` and the code's
``FUSIONLAB_VERSION`` and ``GIT_COMMIT``; while it trains, ``PROGRESS`` (step, steps, last loss, images/s,
ETA: :mod:`fusionlab.sweep.progress`, renewed with the heartbeat); once run (:mod:`fusionlab.sweep.cell`), ``WALL_S`` and
either ``ERROR`` or ``METRICS`` with ``TRAIN_STEPS``, ``FINAL_LOSS``, ``LATENCY_SETTINGS``,
``RESUMED_FROM_STEP`` (the step of the resume point its training continued from, 0 from
scratch) and, each under its ``trials.csv`` column's name (:mod:`fusionlab.results`), the headline
metrics and costs. A trial whose training was stopped on request (Ctrl-C, a scheduler's signal)
is FAIL with ``INTERRUPTED`` and an ``ERROR`` saying so: a cell handed back, which the next worker
claims again and continues from its resume point; it counts as no failure.
A claim that lost to another worker's is marked ``SUPERSEDED``; a trial whose worker died,
``STALE`` with an ``ERROR``. A search trial (:mod:`fusionlab.sweep.search`) holds ``HEARTBEAT``,
``RUN_ID``, ``WALL_S`` and ``METRICS`` or ``ERROR``. A trial claimed by a SLURM array task
(:mod:`fusionlab.sweep.slurm`) also holds the task's ``SLURM_JOB`` (``1234_3``).
"""

VARIANT = "variant"
SEED = "seed"
CELL = "cell"
RUN_ID = "run_id"
DEVICE = "device"
HOST = "host"
PID = "pid"
CLAIM = "claim"
HEARTBEAT = "heartbeat"
PROGRESS = "progress"
FUSIONLAB_VERSION = "fusionlab_version"
GIT_COMMIT = "git_commit"
WALL_S = "wall_s"
ERROR = "error"
METRICS = "metrics"
TRAIN_STEPS = "train_steps"
FINAL_LOSS = "final_loss"
LATENCY_SETTINGS = "latency_settings"
RESUMED_FROM_STEP = "resumed_from_step"
INTERRUPTED = "interrupted"
SUPERSEDED = "superseded"
STALE = "stale"
SLURM_JOB = "slurm_job"
