"""The lumbar-cds command: evaluate a request file, and --help on each command."""

import json
import subprocess
import sys

import pytest

from cds_service.cli import main
from tests.support.hook_requests import full_prefetch, hook_request


def test_evaluate_prints_the_response_for_a_request_file(tmp_path, capsys):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(hook_request("order-sign", prefetch=full_prefetch())))
    assert main(["evaluate", str(request_file), "--no-record"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert isinstance(response["cards"], list)


def test_evaluate_reads_stdin_and_reports_errors(tmp_path):
    body = hook_request("order-select", prefetch=full_prefetch())
    del body["context"]["patientId"]
    result = subprocess.run(
        [sys.executable, "-m", "cds_service.cli", "evaluate", "-", "--no-record"],
        input=json.dumps(body), capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "LCDS-1003" and error["field"] == "context.patientId"


def test_evaluate_rejects_a_file_that_is_not_json(tmp_path, capsys):
    request_file = tmp_path / "request.json"
    request_file.write_text("{nope")
    assert main(["evaluate", str(request_file)]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "LCDS-1001"


@pytest.mark.parametrize("command", [[], ["serve"], ["evaluate"]])
def test_help_on_each_command(command):
    result = subprocess.run(
        [sys.executable, "-m", "cds_service.cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "usage: lumbar-cds" in result.stdout
    if command == ["serve"]:
        assert "--host" in result.stdout and "--port" in result.stdout and "--workers" in result.stdout
