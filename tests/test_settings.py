"""Settings are typed and validated at start: a bad value stops the service with one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cds_service.config import (
    SETTINGS,
    SETTINGS_BY_KEY,
    SettingsError,
    load_settings,
    settings_markdown,
)

ROOT = Path(__file__).resolve().parent.parent

# The defaults of the keys that existed before the pydantic-settings rewrite, unchanged
# (FHIR_MAX_PAGES went from 10 to 50 on purpose; DATABASE_PATH is now made absolute).
PREVIOUS_DEFAULTS = {
    "MAX_BODY_BYTES": 5_000_000,
    "MAX_BUNDLE_ENTRIES": 50_000,
    "MAX_JSON_DEPTH": 64,
    "CORS_ORIGINS": ("*",),
    "LOG_LEVEL": "INFO",
    "FHIR_CONNECT_TIMEOUT": 2.0,
    "FHIR_READ_TIMEOUT": 5.0,
    "FHIR_PLAIN_HTTP_HOSTS": ("127.0.0.1", "localhost", "::1"),
    "FHIR_ALLOWED_ORIGINS": (),
    "AUTH_REQUIRED": False,
    "TRUSTED_ISSUERS_FILE": None,
    "TRUST_SANDBOX": True,
    "JWT_LEEWAY_SECONDS": 30,
    "JWKS_TIMEOUT": 3.0,
    "REDIS_URL": None,
    "PUBLIC_BASE_URL": None,
    "MODE": "active",
    "CARDS_DIR": None,
    "POST_VOID_RESIDUAL_CODES": (),
    "DATABASE_URL": None,
    "PATIENT_HASH_KEY": "change-me-in-production",
    "DASHBOARD_TOKEN": None,
    "RECORD_JUDGEMENTS": True,
}

NEW_DEFAULTS = {
    "FHIR_MAX_PAGES": 50,
    "GATHER_BUDGET_MS": 3000,
    "FHIR_MAX_BYTES_PER_KEY": 20_000_000,
    "FHIR_MAX_ENTRIES_PER_KEY": 50_000,
    "MAX_JUDGED_ORDERS": 50,
    "LOCAL_CODES_FILE": None,
    "METRICS_TOKEN": None,
    "HOST": "127.0.0.1",
    "PORT": 8080,
    "SPOOL_DIR": None,
}


def refused(env: dict[str, str] | None = None, config: dict | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ=env or {})
    return caught.value


# --- defaults and the shape of the result ----------------------------------------------------


def test_defaults_of_existing_keys_are_unchanged():
    settings = load_settings(environ={})
    for key, default in PREVIOUS_DEFAULTS.items():
        assert settings[key] == default, key
        assert type(settings[key]) is type(default), key


def test_new_settings_and_their_defaults():
    settings = load_settings(environ={})
    for key, default in NEW_DEFAULTS.items():
        assert settings[key] == default, key


def test_default_database_path_is_absolute_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={})["DATABASE_PATH"] == str(tmp_path / "instance" / "lumbar-cds.sqlite3")


def test_keys_are_exactly_the_settings_table():
    assert set(load_settings(environ={})) == {s.key for s in SETTINGS}
    for s in SETTINGS:
        assert s.env == f"CDS_{s.key}" and s.doc, s.key


def test_os_environ_is_read_when_no_environ_is_given(monkeypatch):
    monkeypatch.setenv("CDS_MAX_JSON_DEPTH", "12")
    assert load_settings()["MAX_JSON_DEPTH"] == 12


def test_environ_mapping_replaces_os_environ(monkeypatch):
    monkeypatch.setenv("CDS_MAX_JSON_DEPTH", "12")
    assert load_settings(environ={})["MAX_JSON_DEPTH"] == 64


# --- precedence and pass-through -------------------------------------------------------------


def test_config_dict_wins_over_the_environment():
    settings = load_settings({"MODE": "silent", "FHIR_MAX_PAGES": 2}, environ={"CDS_MODE": "active", "CDS_FHIR_MAX_PAGES": "7"})
    assert settings["MODE"] == "silent" and settings["FHIR_MAX_PAGES"] == 2


def test_config_dict_wins_even_when_the_environment_value_is_bad():
    assert load_settings({"AUTH_REQUIRED": True}, environ={"CDS_AUTH_REQUIRED": "enabled"})["AUTH_REQUIRED"] is True


def test_config_none_means_the_default():
    settings = load_settings({"MAX_BODY_BYTES": None, "REDIS_URL": None}, environ={"CDS_REDIS_URL": "redis://r:6379/0"})
    assert settings["MAX_BODY_BYTES"] == 5_000_000 and settings["REDIS_URL"] is None


def test_unknown_keys_pass_through_untouched():
    marker = object()
    settings = load_settings({"TESTING": True, "SERVER_NAME": "x.example", "ANYTHING": marker}, environ={})
    assert settings["TESTING"] is True and settings["SERVER_NAME"] == "x.example" and settings["ANYTHING"] is marker


def test_config_dict_is_not_modified():
    config = {"MODE": "silent", "TESTING": True}
    load_settings(config, environ={})
    assert config == {"MODE": "silent", "TESTING": True}


def test_unknown_cds_variables_are_ignored():
    assert "NOPE" not in load_settings(environ={"CDS_NOPE": "1"})


# --- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "1", "yes", "YES", "on", "On", " true "])
def test_accepted_true_spellings(text):
    assert load_settings(environ={"CDS_AUTH_REQUIRED": text})["AUTH_REQUIRED"] is True


@pytest.mark.parametrize("text", ["false", "FALSE", "False", "0", "no", "NO", "off", "Off"])
def test_accepted_false_spellings(text):
    assert load_settings(environ={"CDS_TRUST_SANDBOX": text})["TRUST_SANDBOX"] is False


@pytest.mark.parametrize("text", ["enabled", "disabled", "t", "f", "y", "n", "2", "", "truee"])
def test_other_boolean_spellings_are_refused(text):
    error = refused({"CDS_AUTH_REQUIRED": text})
    assert error.env == "CDS_AUTH_REQUIRED"
    assert str(error) == f"CDS_AUTH_REQUIRED={text!r} is not a boolean: use true/false, 1/0, yes/no or on/off"


def test_python_booleans_from_the_config_dict():
    assert load_settings({"RECORD_JUDGEMENTS": False}, environ={})["RECORD_JUDGEMENTS"] is False
    assert load_settings({"AUTH_REQUIRED": 1}, environ={})["AUTH_REQUIRED"] is True
    assert refused(config={"AUTH_REQUIRED": "enabled"}).env == "CDS_AUTH_REQUIRED"


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("5000000", 5_000_000),
        ("5MB", 5_000_000),
        ("5mb", 5_000_000),
        ("5 MB", 5_000_000),
        ("5MiB", 5 * 1024 * 1024),
        ("500kB", 500_000),
        ("500KB", 500_000),
        ("64KiB", 65_536),
        ("1.5MB", 1_500_000),
        ("1GB", 10**9),
        ("2GiB", 2 * 2**30),
        ("100B", 100),
    ],
)
def test_sizes(text, expected):
    assert load_settings(environ={"CDS_MAX_BODY_BYTES": text})["MAX_BODY_BYTES"] == expected
    assert load_settings(environ={"CDS_FHIR_MAX_BYTES_PER_KEY": text})["FHIR_MAX_BYTES_PER_KEY"] == expected


@pytest.mark.parametrize("text", ["5 megabytes", "5M", "MB", "-5", "0", "0MB", "1.5", "5TB", "", "five"])
def test_bad_sizes_are_refused(text):
    error = refused({"CDS_MAX_BODY_BYTES": text})
    assert error.env == "CDS_MAX_BODY_BYTES"
    assert str(error).startswith(f"CDS_MAX_BODY_BYTES={text!r} is not a size")


def test_size_from_the_config_dict_is_an_int():
    assert load_settings({"MAX_BODY_BYTES": 2_000}, environ={})["MAX_BODY_BYTES"] == 2_000
    assert refused(config={"MAX_BODY_BYTES": True}).env == "CDS_MAX_BODY_BYTES"


# --- enums, numbers, URLs --------------------------------------------------------------------


def test_enums_accept_any_case_and_normalise():
    settings = load_settings(environ={"CDS_MODE": "Silent", "CDS_LOG_LEVEL": "debug"})
    assert settings["MODE"] == "silent" and settings["LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(
    "env, value, accepted",
    [
        ("CDS_MODE", "loud", "active, silent"),
        ("CDS_LOG_LEVEL", "VERBOSE", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("CDS_LOG_LEVEL", "WARN", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_bad_enum_values_are_refused(env, value, accepted):
    error = refused({env: value})
    assert error.env == env and str(error) == f"{env}={value!r} is not one of {accepted}"


@pytest.mark.parametrize(
    "env, value",
    [
        ("CDS_FHIR_CONNECT_TIMEOUT", "0"),
        ("CDS_FHIR_READ_TIMEOUT", "-1"),
        ("CDS_JWKS_TIMEOUT", "soon"),
        ("CDS_FHIR_READ_TIMEOUT", "inf"),
        ("CDS_FHIR_READ_TIMEOUT", "nan"),
        ("CDS_FHIR_MAX_PAGES", "0"),
        ("CDS_FHIR_MAX_PAGES", "ten"),
        ("CDS_MAX_BUNDLE_ENTRIES", "1.5"),
        ("CDS_MAX_JSON_DEPTH", "-3"),
        ("CDS_GATHER_BUDGET_MS", "0"),
        ("CDS_FHIR_MAX_ENTRIES_PER_KEY", "0"),
        ("CDS_MAX_JUDGED_ORDERS", "0"),
        ("CDS_JWT_LEEWAY_SECONDS", "-1"),
        ("CDS_PORT", "0"),
        ("CDS_PORT", "70000"),
        ("CDS_HOST", "bad host"),
        ("CDS_REDIS_URL", "http://redis:6379/0"),
        ("CDS_REDIS_URL", "redis-host:6379"),
        ("CDS_PUBLIC_BASE_URL", "cds.example.org"),
        ("CDS_PUBLIC_BASE_URL", "ftp://cds.example.org"),
        ("CDS_PUBLIC_BASE_URL", "https://cds.example.org/?q=1"),
        ("CDS_FHIR_ALLOWED_ORIGINS", "https://ok.example.org,fhir.example.org"),
        ("CDS_POST_VOID_RESIDUAL_CODES", "urn:local|PVR,PVR"),
        ("CDS_DATABASE_URL", "not a url"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env, value):
    error = refused({env: value})
    assert error.env == env
    message = str(error)
    assert message.startswith(f"{env}={value!r} ") and "\n" not in message


def test_numbers_parse():
    settings = load_settings(environ={
        "CDS_FHIR_READ_TIMEOUT": "0.5", "CDS_FHIR_MAX_PAGES": "3", "CDS_PORT": "9000", "CDS_JWT_LEEWAY_SECONDS": "0",
        "CDS_GATHER_BUDGET_MS": "1500",
    })
    assert settings["FHIR_READ_TIMEOUT"] == 0.5 and settings["FHIR_MAX_PAGES"] == 3 and settings["PORT"] == 9000
    assert settings["JWT_LEEWAY_SECONDS"] == 0 and settings["GATHER_BUDGET_MS"] == 1500


@pytest.mark.parametrize("url", ["redis://redis:6379/0", "rediss://user:pw@redis.example.org:6380/1", "REDIS://r"])
def test_redis_urls(url):
    assert load_settings(environ={"CDS_REDIS_URL": url})["REDIS_URL"] == url


@pytest.mark.parametrize("url", ["https://cds.example.org", "https://cds.example.org/", "http://127.0.0.1:8080/base"])
def test_public_base_urls(url):
    assert load_settings(environ={"CDS_PUBLIC_BASE_URL": url})["PUBLIC_BASE_URL"] == url


def test_comma_lists_are_tuples():
    settings = load_settings({"CORS_ORIGINS": ["https://a.example", " "]}, environ={
        "CDS_FHIR_ALLOWED_ORIGINS": " https://fhir.example.org , http://127.0.0.1:8081 ",
        "CDS_POST_VOID_RESIDUAL_CODES": "urn:local|PVR,http://loinc.org|12345-6",
        "CDS_FHIR_PLAIN_HTTP_HOSTS": "",
    })
    assert settings["CORS_ORIGINS"] == ("https://a.example",)
    assert settings["FHIR_ALLOWED_ORIGINS"] == ("https://fhir.example.org", "http://127.0.0.1:8081")
    assert settings["POST_VOID_RESIDUAL_CODES"] == ("urn:local|PVR", "http://loinc.org|12345-6")
    assert settings["FHIR_PLAIN_HTTP_HOSTS"] == ()


def test_empty_optional_values_are_unset():
    settings = load_settings(environ={"CDS_REDIS_URL": "", "CDS_DASHBOARD_TOKEN": " ", "CDS_CARDS_DIR": ""})
    assert settings["REDIS_URL"] is None and settings["DASHBOARD_TOKEN"] is None and settings["CARDS_DIR"] is None


# --- secrets are never echoed ----------------------------------------------------------------


@pytest.mark.parametrize(
    "env, value",
    [
        ("CDS_REDIS_URL", "http://user:s3cret@redis:6379"),
        ("CDS_DATABASE_URL", "postgresql+psycopg//cds:s3cret@db/cds"),
        ("CDS_PUBLIC_BASE_URL", "https://user:s3cret@cds.example.org"),
        ("CDS_PATIENT_HASH_KEY", ""),
        ("CDS_PATIENT_HASH_KEY", "   "),
        ("CDS_DASHBOARD_TOKEN", None),
    ],
)
def test_refused_secrets_are_hidden(env, value):
    if value is None:  # a token given as a non-text value through the config dict
        error = refused(config={"DASHBOARD_TOKEN": 12345678})
    else:
        error = refused({env: value})
    assert error.env == env
    message = str(error)
    assert message.startswith(f"{env}=(hidden) ")
    assert "s3cret" not in message and "12345678" not in message


def test_a_url_without_credentials_is_shown():
    assert "'http://redis:6379'" in str(refused({"CDS_REDIS_URL": "http://redis:6379"}))


# --- paths -----------------------------------------------------------------------------------


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    (tmp_path / "cards").mkdir()
    (tmp_path / "issuers.yaml").write_text("issuers: []\n")
    (tmp_path / "local-codes.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={
        "CDS_DATABASE_PATH": "data/store.sqlite3",
        "CDS_CARDS_DIR": "cards",
        "CDS_TRUSTED_ISSUERS_FILE": "issuers.yaml",
        "CDS_LOCAL_CODES_FILE": "./local-codes.yaml",
        "CDS_SPOOL_DIR": "spool",
    })
    assert settings["DATABASE_PATH"] == str(tmp_path / "data" / "store.sqlite3")
    assert settings["CARDS_DIR"] == str(tmp_path / "cards")
    assert settings["TRUSTED_ISSUERS_FILE"] == str(tmp_path / "issuers.yaml")
    assert settings["LOCAL_CODES_FILE"] == str(tmp_path / "local-codes.yaml")
    assert settings["SPOOL_DIR"] == str(tmp_path / "spool")  # need not exist yet
    for key in ("DATABASE_PATH", "CARDS_DIR", "TRUSTED_ISSUERS_FILE", "LOCAL_CODES_FILE", "SPOOL_DIR"):
        assert os.path.isabs(settings[key]) and isinstance(settings[key], str), key


def test_path_objects_from_the_config_dict(tmp_path):
    settings = load_settings({"DATABASE_PATH": tmp_path / "s.sqlite3", "CARDS_DIR": tmp_path}, environ={})
    assert settings["DATABASE_PATH"] == str(tmp_path / "s.sqlite3") and settings["CARDS_DIR"] == str(tmp_path)


@pytest.mark.parametrize(
    "env, make",
    [
        ("CDS_TRUSTED_ISSUERS_FILE", None),  # missing
        ("CDS_TRUSTED_ISSUERS_FILE", "dir"),  # a directory is not a file
        ("CDS_LOCAL_CODES_FILE", None),
        ("CDS_CARDS_DIR", None),
        ("CDS_CARDS_DIR", "file"),  # a file is not a directory
    ],
)
def test_paths_that_must_exist(tmp_path, env, make):
    target = tmp_path / "thing"
    if make == "dir":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    error = refused({env: str(target)})
    assert error.env == env and str(target) in str(error) and "existing" in str(error)


# --- the error ------------------------------------------------------------------------------


def test_settings_error_is_a_value_error_of_one_line_listing_the_others():
    error = refused({"CDS_MODE": "loud", "CDS_AUTH_REQUIRED": "enabled", "CDS_PORT": "x"})
    assert isinstance(error, ValueError)
    assert "\n" not in str(error)
    assert {env for env, _ in error.problems} == {"CDS_MODE", "CDS_AUTH_REQUIRED", "CDS_PORT"}
    assert str(error).startswith(error.env) and "also invalid:" in str(error)


def test_create_app_refuses_a_bad_setting(tmp_path):
    from cds_service.app import create_app

    with pytest.raises(SettingsError, match="CDS_MODE"):
        create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"), "MODE": "loud"})


# --- the README table ------------------------------------------------------------------------


def test_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings-table:start -->\n", 1)[1].split("<!-- settings-table:end -->", 1)[0]
    assert table.strip() == settings_markdown(), "regenerate the README table from settings_markdown()"


def test_markdown_rows_have_four_cells():
    for line in settings_markdown().splitlines():
        cells = line.replace("\\|", "").strip("|").split("|")
        assert len(cells) == 4, line


def test_every_secret_setting_is_hidden():
    assert {k for k, s in SETTINGS_BY_KEY.items() if s.secret} == {"PATIENT_HASH_KEY", "DASHBOARD_TOKEN", "METRICS_TOKEN", "SCREEN_SECRET"}
