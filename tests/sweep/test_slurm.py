"""``fusionlab sweep --slurm`` before anything reaches a cluster: the ``slurm:`` section, its flags, bad inputs.

Each bad input is one line on stderr, exit code 2, and nothing written. The submission to a real
SLURM, its preemption and requeue are in ``tests/cluster/test_slurm.py``.
"""
from __future__ import annotations

import pytest


def _error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_slurm_where_sbatch_is_not_on_path_is_one_line_and_writes_nothing(make_sweep, workdir, sweep, capsys,
                                                                         monkeypatch):
    config = make_sweep()
    monkeypatch.setenv("PATH", str(workdir / "no-slurm-here"))
    assert sweep(config, "--slurm", "--storage", f"journal:{workdir / 'study.log'}") == 2
    assert _error(capsys) == ("fusionlab sweep: error: --slurm: sbatch and srun not on PATH; run it on a SLURM login "
                              "node (to try it on this machine: tests/cluster/start_slurm.sh, then the export it "
                              "prints)")
    assert not (workdir / "results").exists()


def test_slurm_with_sqlite_storage_is_refused_saying_why(make_sweep, workdir, sweep, capsys):
    config = make_sweep()
    assert sweep(config, "--slurm") == 2
    assert _error(capsys) == (
        "fusionlab sweep: error: storage sqlite:///results/tiny/study.db: --slurm runs the workers on other machines, "
        "which cannot share a SQLite file (its locks do not hold on a network disk); use a database server (--storage "
        "postgresql://user:password@host:5432/db) or a journal file on a shared disk (--storage "
        "journal:/shared/disk/tiny.log)")
    assert not (workdir / "results").exists()


def test_an_unknown_key_in_the_slurm_section_names_the_closest_one(make_sweep, sweep, capsys):
    config = make_sweep(slurm={"partiton": "gpu"})
    assert sweep(config, "--slurm", "--dry-run") == 2
    assert _error(capsys).startswith(f"fusionlab sweep: error: {config}: slurm.partiton: unknown key; did you mean "
                                     f"'partition'? allowed keys: partition, account, qos, time, workers,")


@pytest.mark.parametrize("keys, flags, message", [
    ({"time": "4h"}, [], "slurm.time: '4h' is not a SLURM time; expected e.g. '4:00:00'"),
    ({}, ["--time", "4h"], "--time: '4h' is not a SLURM time; expected e.g. '4:00:00'"),
    ({"sbatch": ["--time=1:00:00"]}, [], "slurm.sbatch[0]: '--time=1:00:00': set it with slurm.time instead"),
    ({"time": "0:01:00"}, [], "slurm.signal_delay: 120 s is not shorter than the time limit '0:01:00' (1 min)"),
    ({}, ["--mem", "lots"], "--mem: 'lots' is not a memory size; expected e.g. 64G, 500M or 64000 (MB)"),
])
def test_a_bad_slurm_setting_names_its_key_or_flag(make_sweep, sweep, capsys, keys, flags, message):
    config = make_sweep(slurm=keys)
    assert sweep(config, "--slurm", "--dry-run", "--storage", "journal:study.log", *flags) == 2
    assert message in _error(capsys)


def test_a_slurm_flag_without_slurm_is_refused(make_sweep, sweep, capsys):
    assert sweep(make_sweep(), "--partition", "gpu") == 2
    assert _error(capsys) == "fusionlab sweep: error: --partition is a setting of the SLURM job array; add --slurm"


def test_the_dry_run_says_what_it_would_submit_the_flags_winning_over_the_file(make_sweep, sweep, capsys):
    config = make_sweep()
    # as a user writes it: an unquoted 4:00:00 is that time, not YAML 1.1's base-60 number 14400
    config.write_text(config.read_text() + "slurm:\n  partition: cpu\n  time: 4:00:00\n  cpus_per_task: 8\n"
                                           "  mem: 32G\n")
    assert sweep(config, "--slurm", "--dry-run", "--storage", "journal:study.log", "--partition", "long",
                 "--max-running", "2") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "--slurm would submit one job array: 4 task(s), partition long, time 4:00:00, no GPU, 8 CPU(s), 32G per "
        "task, at most 2 running")


def test_devices_per_cell_becomes_the_gpus_of_each_task(make_sweep, tiny_base, sweep, capsys):
    from fusionlab.sweep import load_sweep
    from fusionlab.sweep.slurm import sbatch_parameters, task_gpus

    tiny_base["train"].update(device="cuda", devices_per_cell=2)
    tiny_base["eval"]["device"] = "cuda"
    config = make_sweep(base=tiny_base, slurm={"time": "2-00:00:00", "sbatch": ["--constraint=a100"]})
    loaded = load_sweep(config)
    assert task_gpus(loaded, loaded.slurm) == 2
    assert sbatch_parameters(loaded, loaded.slurm, 2) == {
        "job_name": "fusionlab-tiny", "time": 2880, "signal_delay_s": 120, "stderr_to_stdout": True,
        "gpus_per_task": 2, "additional_parameters": {"constraint": "a100", "requeue": True}}
    assert sweep(config, "--slurm", "--dry-run", "--storage", "journal:study.log", "--workers", "3") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "--slurm would submit one job array: 3 task(s), time 2-00:00:00, 2 GPU(s) per task")
    assert sweep(config, "--slurm", "--dry-run", "--storage", "journal:study.log", "--gpus-per-task", "1") == 2
    assert _error(capsys) == (
        f"fusionlab sweep: error: {config}: slurm.gpus_per_task: 1, but a cell trains on 2 GPU(s) "
        f"(train.devices_per_cell: 2); set gpus_per_task: 2, or leave it out (or ask for them with an sbatch line "
        f"such as --gres=gpu:2)")
