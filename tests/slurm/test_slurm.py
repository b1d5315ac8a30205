"""Run workflows through a real single-node SLURM cluster with the project's Snakemake profile.

The cluster is installed (apt-get) and started by ``tests/slurm/start_slurm.sh`` and stopped
afterwards by ``stop_slurm.sh`` (unless it was already running). Without root the tests skip;
when the packages cannot be installed they skip too, except in CI (``CI`` or
``PIPELINE_REQUIRE_SLURM`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import resources

pytestmark = pytest.mark.slurm

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROFILE = resources.profile_dir("slurm")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Short status-check delay for tests (the profile's default suits a real cluster); still well
# under a third of MinJobAge=300 set by start_slurm.sh.
SLURM_ARGS = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "5",
              "--slurm-no-account"]
REQUIRED = bool(os.environ.get("CI") or os.environ.get("PIPELINE_REQUIRE_SLURM"))


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                            timeout=30, check=False)
    return result.returncode == 0 and "idle" in result.stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the SLURM test installs and starts munge/slurmctld/slurmd: run as root")
    was_running = _cluster_answers()
    result = subprocess.run(["bash", str(HERE / "start_slurm.sh")], capture_output=True,
                            text=True, timeout=900, check=False)
    if result.returncode == 78 and not REQUIRED:
        pytest.skip(f"could not install slurm-wlm/munge: {result.stderr.strip()[-500:]}")
    assert result.returncode == 0, f"start_slurm.sh failed:\n{result.stdout}\n{result.stderr}"
    yield
    if not was_running:
        subprocess.run(["bash", str(HERE / "stop_slurm.sh")], timeout=120, check=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(args: list[str], workdir: Path, *, timeout: int) -> str:
    result = subprocess.run([*SNAKEMAKE, *args, "--directory", str(workdir)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=timeout, env=_env(),
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def test_tiny_workflow_runs_through_slurm(slurm_cluster: None, tmp_path: Path) -> None:
    snakefile = ["--snakefile", str(HERE / "Snakefile")]
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    local.mkdir()
    cluster.mkdir()
    _snakemake([*snakefile, "--cores", "1"], local, timeout=300)
    output = _snakemake([*snakefile, *SLURM_ARGS], cluster, timeout=900)
    assert "has been submitted with SLURM jobid" in output
    assert "4 of 4 steps (100%) done" in output
    assert json.loads((cluster / "results/parameters.json").read_text()) == \
        json.loads((local / "results/parameters.json").read_text())


def _parameter_values(study: Path) -> dict[str, float]:
    values = {}
    for path in sorted(study.glob("results/*/calibration/*/parameters.json")):
        data = json.loads(path.read_text())
        for mtu, entry in data["mtus"].items():
            for name, item in entry.items():
                if isinstance(item, dict) and "value" in item:
                    values[f"{path.parent.relative_to(study)}/{mtu}/{name}"] = item["value"]
    return values


@pytest.mark.slow
def test_demo_study_through_slurm_matches_local_run(slurm_cluster: None, small_demo_run: Path,
                                                    tmp_path: Path) -> None:
    """The small demo's calibration, execution, figures and report rerun as SLURM jobs (its
    preprocessing and OpenSim outputs are reused) and give the local run's parameters."""
    cluster = tmp_path / "cluster"
    shutil.copytree(small_demo_run, cluster, ignore=shutil.ignore_patterns(".snakemake"))
    for path in [*cluster.glob("results/*/calibration"), *cluster.glob("results/*/figures")]:
        shutil.rmtree(path)
    (cluster / "results/report.html").unlink()
    snakefile = ["--snakefile", str(PROJECT_ROOT / "Snakefile")]
    output = _snakemake([*snakefile, *SLURM_ARGS, "--rerun-triggers", "mtime"], cluster,
                        timeout=3600)
    assert "has been submitted with SLURM jobid" in output
    assert (cluster / "results/report.html").exists()
    local_values, cluster_values = _parameter_values(small_demo_run), _parameter_values(cluster)
    assert local_values, "the local run wrote no calibrated parameters"
    assert cluster_values.keys() == local_values.keys()
    for key, value in local_values.items():
        assert cluster_values[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
