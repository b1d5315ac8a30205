"""The package as a lab installs it: a built wheel in a fresh virtual environment, used from a
folder that has nothing to do with this repository.

The environment reuses the test environment's installed dependencies (a ``.pth`` file naming its
site-packages, added after the wheel is installed), so nothing is downloaded and no clone is on
the path: ``pipeline`` is imported from the wheel, and the workflow, config defaults, schemas and
templates must come from the package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from project_paths import PROJECT_ROOT

from pipeline import resources


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    cli: Path
    env: dict[str, str]


def _check(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "pipeline", source / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--quiet", "--wheel-dir", str(root / "dist"), str(source)])
    (wheel,) = (root / "dist").glob("pipeline-*.whl")
    venv = root / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _check([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
            "--no-index", "--quiet", str(wheel)])
    # Only now (pip must not see the test environment's own `pipeline`): reuse its dependencies.
    purelib = _check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"]).stdout.strip()
    test_env = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "test_environment.pth").write_text("\n".join(sorted(test_env)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(wheel, python, venv / "bin" / "nms-pipeline", env)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty folder outside the repository, the current folder of every command."""
    folder = tmp_path / "lab"
    folder.mkdir()
    return folder


def _cli(installed: Installed, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(installed.cli), *args], cwd=folder, env=installed.env,
                          capture_output=True, text=True, timeout=900)


def test_wheel_holds_every_data_file_of_the_package(installed: Installed) -> None:
    source = PROJECT_ROOT / "pipeline"
    data = {p.relative_to(PROJECT_ROOT).as_posix() for p in source.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    with zipfile.ZipFile(installed.wheel) as archive:
        shipped = set(archive.namelist())
    assert {"pipeline/workflow/Snakefile", "pipeline/resources/config/config.yaml"} <= data
    assert sorted(data - shipped) == [], "add a pattern to [tool.setuptools.package-data]"
    entry_points = next(n for n in shipped if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(installed.wheel) as archive:
        assert "nms-pipeline = pipeline.__main__:console" in archive.read(entry_points).decode()


def test_new_and_validate_study_from_an_unrelated_folder(installed: Installed,
                                                          elsewhere: Path) -> None:
    where = subprocess.run([str(installed.python), "-c",
                            "import pipeline; print(pipeline.__file__)"],
                           cwd=elsewhere, env=installed.env, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(installed.python.parent.parent), where

    created = _cli(installed, elsewhere, "new-study", "my_study")
    assert created.returncode == 0, created.stderr
    assert (elsewhere / "my_study" / "config.yaml").read_text() == (
        resources.template_dir() / "config.yaml").read_text()
    checked = _cli(installed, elsewhere, "validate-study", "my_study", "--skip-files")
    assert checked.returncode == 0, checked.stderr
    assert "valid (1 subject(s), 4 trial(s))" in checked.stderr

    defaults = _cli(installed, elsewhere, "defaults")
    assert defaults.stdout == resources.default_config().read_text()

    missing = _cli(installed, elsewhere, "run", "no_such_study", "--dry-run")
    assert missing.returncode == 2
    assert "no_such_study: study folder does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["my_study"]


@pytest.mark.slow
def test_demo_study_and_dry_run_from_an_unrelated_folder(installed: Installed,
                                                         elsewhere: Path) -> None:
    """demo-study builds OpenSim models: OpenSim's log must not land in the current folder."""
    demo = _cli(installed, elsewhere, "demo-study", "demo", "--small")
    assert demo.returncode == 0, demo.stderr[-4000:]
    checked = _cli(installed, elsewhere, "validate-study", "demo")
    assert checked.returncode == 0, checked.stderr
    dry = _cli(installed, elsewhere, "run", "demo", "--cores", "1", "--dry-run", "--quiet",
               "rules")
    assert dry.returncode == 0, dry.stdout[-4000:] + dry.stderr[-4000:]
    output = dry.stdout + dry.stderr
    assert f"Snakefile: {installed.python.parent.parent}" in output, output[-4000:]
    for rule in ("scale", "calibrate", "report"):
        assert f"\n{rule} " in output, output[-4000:]
    assert "Nothing to be done" not in output
    assert sorted(p.name for p in elsewhere.iterdir()) == ["demo"]
    assert not list(elsewhere.rglob("opensim.log"))
