"""The lumbar-cds command as an operator meets it (issue 14): every error one line with its
documented exit code, never a traceback; `--version`; a `--help` that imports no store, Flask or
gunicorn; `evaluate` of a scenario file; settings refused before gunicorn starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service import __version__
from cds_service.cli import EXIT_ANSWERED_ERROR, EXIT_OK, EXIT_STORE_UNREACHABLE, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "scenarios" / "acute-lbp-2-weeks-xray.json"


def lumbar_cds(*args: str, cwd: Path, env: dict | None = None, stdin: str | None = None, timeout: int = 90):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.setdefault("CDS_DATABASE_PATH", str(cwd / "instance" / "store.sqlite3"))
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "cds_service.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, input=stdin, timeout=timeout)


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_the_exit_codes_are_the_documented_ones():
    assert (EXIT_OK, EXIT_ANSWERED_ERROR, EXIT_USAGE, EXIT_STORE_UNREACHABLE) == (0, 1, 2, 3)
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### The lumbar-cds command", 1)[1].split("\n#", 1)[0]
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in table


def test_evaluate_a_missing_file_is_one_line_naming_it(tmp_path):
    result = lumbar_cds("evaluate", "/nonexistent.json", cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    line = one_line(result)
    assert line.startswith("lumbar-cds evaluate: ") and "/nonexistent.json" in line and "No such file" in line


def test_db_current_on_an_unreachable_database_is_one_line_exit_3(tmp_path):
    url = "postgresql+psycopg://gov:s3cret@127.0.0.1:1/nope"
    result = lumbar_cds("db", "current", "--database-url", url, cwd=tmp_path)
    assert result.returncode == EXIT_STORE_UNREACHABLE
    line = one_line(result)
    assert "cannot reach the governance store postgresql+psycopg://gov:***@127.0.0.1:1/nope" in line
    assert "s3cret" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["report"]])
def test_a_database_url_without_a_dialect_is_one_line_exit_2(tmp_path, command):
    result = lumbar_cds(*command, "--database-url", "foo://bar", cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    line = one_line(result)
    assert "NoSuchModuleError" in line and "give a SQLAlchemy URL" in line


def test_a_malformed_database_url_names_the_option(tmp_path):
    result = lumbar_cds("db", "upgrade", "--database-url", "nonsense", cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert "--database-url" in one_line(result)


@pytest.mark.parametrize("args", [["bogus"], ["evaluate"], ["serve", "--port", "eighty"], ["db"]])
def test_usage_errors_are_one_line_exit_2(tmp_path, args):
    result = lumbar_cds(*args, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert "--help" in one_line(result)


def test_version(tmp_path):
    result = lumbar_cds("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"lumbar-cds {__version__}"


def test_help_imports_no_store_flask_or_gunicorn(tmp_path):
    """Fast --help: the parser is built without the store (SQLAlchemy, Alembic), Flask or gunicorn."""
    probe = ("import sys\nfrom cds_service.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    modules = {name.split(".")[0] for name in result.stderr.split()}
    assert "usage: lumbar-cds" in result.stdout
    assert not modules & {"sqlalchemy", "alembic", "flask", "werkzeug", "gunicorn", "uvicorn", "prometheus_client"}
    assert "cds_service" in modules


def test_evaluate_takes_a_scenario_file_and_gives_its_expected_answer(tmp_path):
    result = lumbar_cds("evaluate", str(SCENARIO), "--no-record", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    response = json.loads(result.stdout)
    expected = json.loads(SCENARIO.read_text())["expected"]
    cards = [(c["source"]["topic"]["code"], c["indicator"]) for c in response["cards"]]
    assert cards == [(c["topic"], c["indicator"]) for c in expected["cards"]]
    ratings = [e["valueCodeableConcept"]["coding"][0]["code"] for action in response["systemActions"]
               for e in action["resource"]["extension"] if e["url"].endswith("/pama-rating")]
    assert ratings == list(expected["ratings"].values())


def test_evaluate_says_no_deployment_warning(tmp_path):
    """The shipped hash key is a warning for `serve`, not for each developer's `evaluate`."""
    result = lumbar_cds("evaluate", str(SCENARIO), "--record", cwd=tmp_path)  # the store is made
    assert result.returncode == EXIT_OK
    assert "CDS_PATIENT_HASH_KEY" not in result.stderr


@pytest.mark.parametrize("env, named", [
    ({"CDS_LOG_LEVEL": "LOUD"}, "CDS_LOG_LEVEL"),
    ({"CDS_MODE": "bogus"}, "CDS_MODE"),
    ({"CDS_MAX_BODY_BYTES": "5XB"}, "CDS_MAX_BODY_BYTES"),
    ({"CDS_AUTH_REQUIRED": "enabled"}, "CDS_AUTH_REQUIRED"),
    ({"CDS_TRUSTED_ISSUERS_FILE": "/nonexistent/issuers.yaml"}, "CDS_TRUSTED_ISSUERS_FILE"),
    ({"CDS_PORT": "80000"}, "CDS_PORT"),
    ({"CDS_DATABASE_URL": "foo://bar"}, "CDS_DATABASE_URL"),
])
def test_serve_refuses_a_bad_setting_in_one_line_before_gunicorn_starts(tmp_path, env, named):
    result = lumbar_cds("serve", "--port", "1", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == EXIT_USAGE
    line = one_line(result)
    assert line.startswith("lumbar-cds serve: ") and named in line
    assert "gunicorn" not in result.stderr.lower() and "serving" not in result.stderr


def test_serve_refuses_a_malformed_issuers_file_before_gunicorn_starts(tmp_path):
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text("- iss: https://ehr.example.test\n")  # no way to find its keys
    result = lumbar_cds("serve", "--port", "1", cwd=tmp_path, timeout=60,
                        env={"CDS_AUTH_REQUIRED": "true", "CDS_TRUSTED_ISSUERS_FILE": str(issuers)})
    assert result.returncode == EXIT_USAGE
    line = one_line(result)
    assert "CDS_TRUSTED_ISSUERS_FILE" in line and "issuers.yaml" in line


def test_serve_names_a_worker_that_cannot_start_in_json_then_one_line(tmp_path):
    """A failure only a worker can see (here an empty cards folder) is one JSON line per worker,
    not a traceback, then one line from the command, exit 2."""
    (tmp_path / "cards").mkdir()
    result = lumbar_cds("serve", "--port", "0", "--workers", "1", cwd=tmp_path, timeout=120,
                        env={"CDS_CARDS_DIR": str(tmp_path / "cards")})
    assert result.returncode == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    *log_lines, last = lines
    assert last.startswith("lumbar-cds serve: ") and "could not start" in last
    events = [json.loads(line) for line in log_lines]
    failed = [e for e in events if e["event"] == "the service cannot start"]
    assert failed and "common.yaml" in failed[0]["reason"]
