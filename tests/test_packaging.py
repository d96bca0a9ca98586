"""Packaging: the wheel carries every data file the service reads, and the Dockerfile is sound.

A data file missing from the wheel would only show in production (the Docker image installs the
wheel), so this builds the wheel as the Dockerfile does and compares it with the source tree.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = out.glob("lumbar_imaging_cds-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def source_data_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "cds_service"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in tracked if not path.endswith(".py")]


def test_every_package_data_file_is_in_the_wheel(wheel_names):
    missing = [path for path in source_data_files() if path not in wheel_names]
    assert missing == []


def test_card_files_are_installed_as_shared_data(wheel_names):
    cards = sorted(p.name for p in (ROOT / "cards").glob("*.yaml"))
    installed = sorted(n.rsplit("/", 1)[-1] for n in wheel_names if ".data/data/share/lumbar-imaging-cds/cards/" in n)
    assert installed == cards


def test_console_script_is_declared(wheel_names):
    entry_points = next(n for n in wheel_names if n.endswith("entry_points.txt"))
    assert entry_points


def test_dockerfile_runs_gunicorn_as_non_root_with_a_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert '"lumbar-cds", "serve"' in dockerfile  # lumbar-cds serve runs gunicorn
    assert "CDS_AUTH_REQUIRED=true" in dockerfile
    assert "CDS_TRUST_SANDBOX=false" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored
