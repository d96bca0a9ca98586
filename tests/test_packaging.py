"""Packaging: the wheel carries every data file the service reads, and the Dockerfile is sound.

A data file missing from the wheel would only show in production (the Docker image installs the
wheel), so this builds the wheel as the Dockerfile does and compares it with the source tree.
"""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory):
    """(the wheel, everything the build printed), built as the Dockerfile builds it."""
    out = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # (its own notice)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300, env=env,
    )
    (wheel,) = out.glob("lumbar_imaging_cds-*.whl")
    return wheel, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel_names(wheel_build):
    with zipfile.ZipFile(wheel_build[0]) as archive:
        return set(archive.namelist())


def test_the_build_gives_no_setuptools_warning(wheel_build):
    """Issue 14: ~215 lines of setuptools warnings on every install (data folders left out of
    `packages = find:`, dead package_data lines)."""
    build_log = wheel_build[1]
    assert "running bdist_wheel" in build_log or "Building wheel" in build_log  # the verbose log
    warnings = [line for line in build_log.splitlines()
                if re.search(r"SetuptoolsDeprecationWarning|SetuptoolsWarning|_DeprecatedConfig|"
                             r"^\s*warning:|Package '.*' is absent|!!$", line)]
    assert warnings == []


def _cards_dir_after_install(pip: list[str], python: str, env: dict, wheel: Path, cwd: Path, *options: str) -> Path:
    """Install the wheel with `pip` (options given), then ask `python` where the cards are."""
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-index", "--no-compile",
                    "--disable-pip-version-check", *options, str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    found = subprocess.run([python, "-c", "import cds_service; print(cds_service.cards_dir())"],
                           check=True, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    return Path(found.stdout.strip())


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER", "PYTHONNOUSERSITE")}
    return {**env, **extra}


def test_cards_are_found_in_a_virtual_environment_install(wheel_build, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # The test run's pip installs into the new environment (never into its own).
    found = _cards_dir_after_install([sys.executable, "-m", "pip", "--python", python], python, _clean_env(),
                                     wheel_build[0], tmp_path)
    assert found == venv / "share" / "lumbar-imaging-cds" / "cards"
    assert (found / "common.yaml").is_file()


def test_cards_are_found_in_a_user_install(wheel_build, tmp_path):
    """`pip install --user`: the cards are under the user base, not under sys.prefix."""
    python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("the base interpreter has no pip")
    user_base = tmp_path / "user"
    found = _cards_dir_after_install([python, "-m", "pip"], python, _clean_env(PYTHONUSERBASE=str(user_base)),
                                     wheel_build[0], tmp_path, "--user", "--no-warn-script-location")
    assert found == user_base / "share" / "lumbar-imaging-cds" / "cards"
    assert (found / "common.yaml").is_file()


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


def test_the_license_file_is_the_declared_one_and_ships_in_the_wheel(wheel_names):
    """Issue 14: no LICENSE file though setup.cfg says Apache-2.0."""
    assert "license = Apache-2.0" in (ROOT / "setup.cfg").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_names)


def test_the_source_tree_cards_are_found_first():
    from cds_service import cards_dir

    assert cards_dir() == ROOT / "cards"
    assert cards_dir("/somewhere/else") == Path("/somewhere/else")


def test_every_package_data_pattern_names_files():
    """No dead `package_data` lines (issue 14: two for `migrations/*` matched nothing)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    for package, patterns in config["options.package_data"].items():
        folder = ROOT.joinpath(*package.split("."))
        for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
            assert list(folder.glob(pattern)), f"{package} = {pattern} matches no file"
