"""The lumbar-cds command: evaluate a request file, and --help on each command."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.cli import main
from tests.support.hook_requests import full_prefetch, hook_request

ROOT = Path(__file__).resolve().parents[2]


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


def test_evaluate_rejects_a_file_that_is_not_json_naming_line_and_column(tmp_path, capsys):
    request_file = tmp_path / "request.json"
    request_file.write_text('{"hook": "order-sign",\n  "context": }')
    assert main(["evaluate", str(request_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"lumbar-cds evaluate: {request_file} is not valid JSON: ")
    assert "at line 2, column 14" in line


@pytest.mark.parametrize(("content", "says"), [
    ("[]", "the request must be a JSON object, and standard input holds an array"),
    ('"order-sign"', "the request must be a JSON object, and standard input holds a string"),
])
def test_evaluate_of_json_that_is_no_object_says_so(content, says):
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "evaluate", "-"], input=content,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert says in result.stderr and "--service" not in result.stderr


def test_evaluate_of_a_hook_no_service_answers_names_it_and_the_services(tmp_path, capsys):
    body = hook_request("order-sign", prefetch=full_prefetch())
    body["hook"] = "patient-view"
    request_file = tmp_path / "patient-view.json"
    request_file.write_text(json.dumps(body))
    assert main(["evaluate", str(request_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no service here answers the hook 'patient-view'" in err
    assert "lumbar-imaging-order-select (order-select)" in err and "lumbar-imaging-order-sign (order-sign)" in err
    del body["hook"]
    request_file.write_text(json.dumps(body))
    assert main(["evaluate", str(request_file)]) == 2
    assert "names no hook" in capsys.readouterr().err


def test_evaluate_with_a_service_still_hears_the_services_answer(tmp_path, capsys):
    body = hook_request("order-sign", prefetch=full_prefetch())
    body["hook"] = "patient-view"
    request_file = tmp_path / "patient-view.json"
    request_file.write_text(json.dumps(body))
    assert main(["evaluate", str(request_file), "--service", "lumbar-imaging-order-sign"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["field"]) == ("LCDS-1005", "hook")


def run_evaluate(tmp_path, *flags: str):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(hook_request("order-sign", prefetch=full_prefetch())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return subprocess.run([sys.executable, "-m", "cds_service.cli", "evaluate", str(request_file), *flags],
                          capture_output=True, text=True, cwd=tmp_path, timeout=90,
                          env={**env, "PYTHONPATH": str(ROOT)})


def test_evaluate_records_nothing_unless_asked(tmp_path):
    result = run_evaluate(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cards"]
    assert not (tmp_path / "instance").exists()  # no store made in the working directory


def test_evaluate_with_record_keeps_the_judgement(tmp_path):
    result = run_evaluate(tmp_path, "--record")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)["cards"][0]
    with sqlite3.connect(tmp_path / "instance" / "lumbar-cds.sqlite3") as store:
        rows = store.execute("SELECT card_uuid, topic FROM lcds_judgement").fetchall()
    assert rows == [(card["uuid"], card["source"]["topic"]["code"])]


@pytest.mark.parametrize("command", [[], ["serve"], ["evaluate"]])
def test_help_on_each_command(command):
    result = subprocess.run(
        [sys.executable, "-m", "cds_service.cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "usage: lumbar-cds" in result.stdout
    if command == ["serve"]:
        assert "--host" in result.stdout and "--port" in result.stdout and "--workers" in result.stdout
