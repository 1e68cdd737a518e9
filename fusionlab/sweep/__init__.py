"""Ablation sweeps: every (variant, seed) cell of a YAML trained, evaluated and recorded in an optuna study.

The rooms: :mod:`~fusionlab.sweep.config` (the YAML, variants, cell keys),
:mod:`~fusionlab.sweep.store` (the optuna study: opening, the results folder's binding,
claims, heartbeats), :mod:`~fusionlab.sweep.trial_attrs` (the keys of what a trial stores),
:mod:`~fusionlab.sweep.cell` (one cell: train, evaluate, costs, files),
:mod:`~fusionlab.sweep.workers` (the claim loop, worker processes, ``trials.csv``),
:mod:`~fusionlab.sweep.progress` and :mod:`~fusionlab.sweep.status` (a running cell's progress in its
trial, and ``fusionlab status``'s table of them),
:mod:`~fusionlab.sweep.launch` (one ``fusionlab sweep`` launch) and
:mod:`~fusionlab.sweep.search` (TPE search on the same store). The result files are
described in :mod:`fusionlab.report.loading`.
"""
from fusionlab.sweep.config import SweepConfig, load_sweep
from fusionlab.sweep.launch import SweepOutcome, describe_cells, run_sweep

__all__ = ["SweepConfig", "SweepOutcome", "describe_cells", "load_sweep", "run_sweep"]
