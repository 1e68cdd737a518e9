"""Ablation sweeps: every (variant, seed) cell of a YAML trained, evaluated and recorded in an optuna study.

``fusionlab sweep ablations/fusion.yaml`` runs :func:`sweep_main`; the YAML layout is in
:mod:`fusionlab.sweep.config`, the runner (claims, heartbeats, resume, workers) in
:mod:`fusionlab.sweep.runner`, and the result files it writes in :mod:`fusionlab.report.results`.
"""
from fusionlab.sweep.config import SweepConfig, load_sweep
from fusionlab.sweep.runner import EXIT_SOME_FAILED, sweep_main

__all__ = ["EXIT_SOME_FAILED", "SweepConfig", "load_sweep", "sweep_main"]
