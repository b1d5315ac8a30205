"""``run`` builds the Snakemake command on the packaged workflow; ``defaults`` prints the config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline import resources
from pipeline.__main__ import main
from pipeline.cli.workflow import snakemake_command
from pipeline.errors import ConfigError


def test_command_runs_the_packaged_snakefile_on_the_study(tmp_path: Path) -> None:
    command = snakemake_command(tmp_path / "study", cores="3", profile=None,
                                snakemake_args=["--dry-run", "--until", "calibrate"])
    assert command[:3] == [sys.executable, "-m", "snakemake"]
    assert command[command.index("--snakefile") + 1] == str(resources.snakefile())
    assert command[command.index("--directory") + 1] == str((tmp_path / "study").resolve())
    assert command[command.index("--cores") + 1] == "3"
    assert command[-3:] == ["--dry-run", "--until", "calibrate"]
    assert resources.snakefile().is_file()


def test_a_local_run_selects_jobs_greedily_unless_told_otherwise(tmp_path: Path) -> None:
    local = snakemake_command(tmp_path, cores="2", profile=None, snakemake_args=[])
    assert local[local.index("--scheduler") + 1] == "greedy"
    for own in (["--scheduler", "ilp"], ["--scheduler=ilp"]):
        command = snakemake_command(tmp_path, cores="2", profile=None, snakemake_args=own)
        assert "greedy" not in command and command[-len(own):] == own
    cluster = snakemake_command(tmp_path, cores=None, profile="slurm", snakemake_args=[])
    assert "--scheduler" not in cluster  # the profile decides


def test_profile_by_name_or_folder(tmp_path: Path) -> None:
    packaged = snakemake_command(tmp_path, cores=None, profile="slurm", snakemake_args=[])
    assert packaged[packaged.index("--profile") + 1] == str(resources.profile_dir("slurm"))
    assert "--cores" not in packaged  # the profile's executor decides
    own = tmp_path / "my_profile"
    own.mkdir()
    with pytest.raises(ConfigError, match="not a Snakemake profile"):
        snakemake_command(tmp_path, cores=None, profile=str(own), snakemake_args=[])
    (own / "config.yaml").write_text("jobs: 2\n")
    command = snakemake_command(tmp_path, cores=None, profile=str(own), snakemake_args=[])
    assert command[command.index("--profile") + 1] == str(own.resolve())
    with pytest.raises(ConfigError, match="no packaged Snakemake profile 'pbs'.*slurm"):
        snakemake_command(tmp_path, cores=None, profile="pbs", snakemake_args=[])


def test_unknown_options_are_refused_except_by_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate-study", "x", "--dry-run"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --dry-run" in capsys.readouterr().err


def test_defaults_prints_the_commented_default_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["defaults"]) == 0
    assert capsys.readouterr().out == resources.default_config().read_text(encoding="utf-8")


def test_a_local_run_points_scontrol_at_an_empty_configuration() -> None:
    """The SLURM plugin's ``scontrol show config`` at Snakemake's start must fail at once for a
    local run (it waits ~10 s where no controller answers); SLURM runs keep the environment."""
    from pipeline.cli.workflow import snakemake_environment

    base = {"PATH": "/usr/bin"}
    assert snakemake_environment(base, profile=None, snakemake_args=["-n"])["SLURM_CONF"] \
        == os.devnull
    for profile, args in (("slurm", []), (None, ["--executor", "slurm"]),
                          (None, ["-e", "slurm"]), (None, ["--executor=slurm"])):
        assert "SLURM_CONF" not in snakemake_environment(base, profile=profile,
                                                         snakemake_args=args)
    mine = {**base, "SLURM_CONF": "/etc/slurm/site.conf"}
    assert snakemake_environment(mine, profile=None, snakemake_args=[])["SLURM_CONF"] \
        == "/etc/slurm/site.conf"
    assert base == {"PATH": "/usr/bin"}  # the caller's mapping is not changed
