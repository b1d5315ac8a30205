"""Provenance record and config hashes (what makes reruns traceable and selective)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pipeline
from pipeline.provenance import canonical_json, config_section_hash, git_commit, provenance

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"calibration": {"optimiser": {"max_iterations": 2000, "learning_rate": 0.05},
                          "seed": 0},
          "markers": {"cutoff_hz": 6.0}}


def test_provenance_fields(tmp_path: Path) -> None:
    a = tmp_path / "a.npz"
    a.write_bytes(b"abc")
    record = provenance(CONFIG, seed=3, inputs=[a])
    assert set(record) == {"package_version", "git_commit", "config_sha256", "seed", "inputs"}
    assert record["package_version"] == pipeline.__version__
    assert record["seed"] == 3
    assert record["inputs"] == {a.as_posix(): hashlib.sha256(b"abc").hexdigest()}
    assert len(record["config_sha256"]) == 64


def test_git_commit_is_the_project_head_or_none(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True)
    expected = head.stdout.strip() if head.returncode == 0 else None
    assert git_commit() == expected
    assert git_commit(tmp_path) is None  # not a repository


def test_git_commit_of_an_enclosing_repository_is_not_the_code_s(tmp_path: Path) -> None:
    """An installed package's folder inside someone else's repository reports no commit."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "lab"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    site_packages = tmp_path / "venv" / "lib" / "site-packages"
    site_packages.mkdir(parents=True)
    assert git_commit(tmp_path) == head
    assert git_commit(site_packages) is None


def test_config_hash_ignores_key_order_and_sees_values() -> None:
    reordered = {"markers": {"cutoff_hz": 6.0},
                 "calibration": {"seed": 0, "optimiser": {"learning_rate": 0.05,
                                                          "max_iterations": 2000}}}
    assert provenance(CONFIG, seed=0, inputs=[])["config_sha256"] == \
        provenance(reordered, seed=0, inputs=[])["config_sha256"]
    assert canonical_json(CONFIG) == canonical_json(reordered)
    changed = {**CONFIG, "calibration": {**CONFIG["calibration"],
                                         "optimiser": {"max_iterations": 10,
                                                       "learning_rate": 0.05}}}
    assert config_section_hash(CONFIG, "markers") == config_section_hash(changed, "markers")
    assert config_section_hash(CONFIG, "calibration.optimiser") != \
        config_section_hash(changed, "calibration.optimiser")
    assert config_section_hash(CONFIG, "calibration.optimiser.learning_rate") == \
        config_section_hash(changed, "calibration.optimiser.learning_rate")
    assert config_section_hash(CONFIG, "nope") != config_section_hash({"nope": 1}, "nope")
