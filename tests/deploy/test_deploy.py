"""The deployment files are consistent with the code: known settings with accepted values, two
replicas behind a proxy, health checks, migration before the app, valid Kubernetes manifests.

Nothing here starts a container: compose.yaml is read with PyYAML, nginx.conf as text, and the
Kubernetes manifests are validated offline against the JSON schemas that `kubernetes-validate`
ships inside its package.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from cds_service.config import SETTINGS_BY_KEY, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30"  # the oldest minor the manifests are meant for

# Values an operator puts in deploy/.env, standing in for compose's ${NAME:?...} placeholders.
SAMPLES = {
    "POSTGRES_PASSWORD": "0123456789abcdef",
    "CDS_FHIR_ALLOWED_ORIGINS": "https://fhir.ehr.example.org",
    "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
    "CDS_PATIENT_HASH_KEY": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "CDS_SCREEN_SECRET": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
}

_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} with `env` as the .env file."""

    def replace(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return value if value not in (None, "") or (op == "-" and value is not None) else arg
        if value is None:
            raise AssertionError(f"compose placeholder ${{{name}}} has no sample value in SAMPLES")
        return value

    return _PLACEHOLDER.sub(replace, text)


def interpolate_values(node, env: dict[str, str]):
    """Compose interpolates the parsed values (not comments): do the same, recursively."""
    if isinstance(node, dict):
        return {k: interpolate_values(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_values(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def placeholders(node) -> list[re.Match]:
    if isinstance(node, dict):
        return [m for v in node.values() for m in placeholders(v)]
    if isinstance(node, list):
        return [m for v in node for m in placeholders(v)]
    return list(_PLACEHOLDER.finditer(node)) if isinstance(node, str) else []


def existing_paths_for(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Container paths of file/folder settings mapped to stand-ins that exist on this machine."""
    result = dict(environ)
    for name, value in environ.items():
        setting = SETTINGS_BY_KEY.get(name.removeprefix("CDS_"))
        if setting is None or not value:
            continue
        stand_in = tmp_path / name
        if setting.accepted == "existing file":
            stand_in.write_text("issuers: []\n")
            result[name] = str(stand_in)
        elif setting.accepted == "existing directory":
            stand_in.mkdir(exist_ok=True)
            result[name] = str(stand_in)
    return result


def assert_cds_environment(environ: dict[str, str], where: str, tmp_path: Path) -> dict:
    for name in environ:
        if name.startswith("CDS_"):
            assert name.removeprefix("CDS_") in SETTINGS_BY_KEY, f"{where}: {name} is not a setting"
    cds_only = {k: str(v) for k, v in environ.items() if k.startswith("CDS_")}
    return load_settings(environ=existing_paths_for(cds_only, tmp_path))


def as_mapping(environment) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


def cli_accepts(command: list[str]) -> None:
    from cds_service.cli import build_parser

    assert command[0] == "lumbar-cds", command
    build_parser().parse_args(command[1:])  # SystemExit on an unknown command or option


def nginx_size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", text).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


# --- compose --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (DEPLOY / "compose.yaml").read_text()


@pytest.fixture(scope="module")
def raw_compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    return interpolate_values(raw_compose, SAMPLES)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def test_every_compose_placeholder_is_required_or_defaulted(raw_compose):
    assert placeholders(raw_compose)
    for match in placeholders(raw_compose):
        assert match["op"] in (":-", ":?"), f"{match[0]}: give a default (:-) or an error (:?)"


def test_app_runs_two_replicas_of_the_repository_image(services):
    app = services["app"]
    assert app["deploy"]["replicas"] == 2
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert app["command"][:2] == ["lumbar-cds", "serve"]
    cli_accepts(app["command"])
    assert "ports" not in app, "only the proxy publishes a port"


def test_app_settings_are_known_and_accepted(services, tmp_path):
    environ = as_mapping(services["app"]["environment"])
    settings = assert_cds_environment(environ, "compose app", tmp_path)
    assert settings["AUTH_REQUIRED"] is True and settings["TRUST_SANDBOX"] is False
    assert settings["FHIR_ALLOWED_ORIGINS"], "CDS_FHIR_ALLOWED_ORIGINS is required when auth is on"
    assert settings["TRUSTED_ISSUERS_FILE"]
    assert settings["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert urlsplit(settings["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(settings["REDIS_URL"]).hostname == "redis"
    assert settings["PUBLIC_BASE_URL"] == SAMPLES["CDS_PUBLIC_BASE_URL"]
    assert settings["PATIENT_HASH_KEY"] == SAMPLES["CDS_PATIENT_HASH_KEY"]


def test_secrets_come_from_the_env_file_not_the_compose_file(compose_text):
    for name in ("CDS_PATIENT_HASH_KEY", "CDS_SCREEN_SECRET", "POSTGRES_PASSWORD"):
        assert re.search(rf"{name}: \$\{{{name}:\?", compose_text), f"{name} must be a required placeholder"
    assert "POSTGRES_PASSWORD:?" in compose_text.split("CDS_DATABASE_URL:", 1)[1].split("\n", 1)[0]


def test_the_trusted_issuers_folder_is_mounted_where_the_setting_points(services):
    app = services["app"]
    target = as_mapping(app["environment"])["CDS_TRUSTED_ISSUERS_FILE"]
    mounts = [v for v in app["volumes"] if isinstance(v, dict)]
    assert any(target.startswith(m["target"] + "/") and m.get("read_only") for m in mounts)
    assert all(m["bind"]["create_host_path"] is False for m in mounts if m["type"] == "bind")


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if service.get("restart") == "no":  # one-shot jobs report by exit code
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_app_health_check_is_healthz(services):
    assert "/healthz" in " ".join(services["app"]["healthcheck"]["test"])


def test_migration_runs_before_the_app(services):
    migrate = services["migrate"]
    assert migrate["command"] == ["lumbar-cds", "db", "upgrade"]
    cli_accepts(migrate["command"])
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["image"] == services["app"]["image"]


def test_migration_settings_are_known_and_accepted(services, tmp_path):
    environ = as_mapping(services["migrate"]["environment"])
    settings = assert_cds_environment(environ, "compose migrate", tmp_path)
    assert settings["DATABASE_URL"] == assert_cds_environment(
        as_mapping(services["app"]["environment"]), "compose app", tmp_path)["DATABASE_URL"]


def test_shared_stores(services):
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"].split(":")[0] == "redis" and services["redis"]["image"].startswith("redis:7")
    command = services["redis"]["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert command[command.index("--appendonly") + 1] == "yes", "the replay store must survive restarts"
    for name in ("postgres", "redis"):
        assert any(v.endswith(("/var/lib/postgresql/data", ":/data")) for v in services[name]["volumes"])
        assert "ports" not in services[name]
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_stores_are_on_an_internal_network(compose, services):
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis"):
        assert services[name]["networks"] == ["backend"]
    assert "backend" not in services["proxy"]["networks"]


def test_the_proxy_is_in_front(services):
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["ports"], "the proxy publishes the service"
    assert proxy["depends_on"]["app"]["condition"] == "service_healthy"
    assert any(v.startswith("./nginx.conf:/etc/nginx/nginx.conf") for v in proxy["volumes"])
    for name, service in services.items():
        if name != "proxy":
            assert "ports" not in service, f"{name} must not publish a port (all calls go through nginx)"


# --- nginx.conf -------------------------------------------------------------------------------


def nginx_directives(conf: str, name: str) -> list[str]:
    text = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+([^;]+);", text)]


def test_nginx_proxies_to_an_upstream_group_of_the_app_service(nginx_conf, services):
    primary, backup = [d.split() for d in nginx_directives(nginx_conf, "server") if "{" not in d]
    app = f"app:{as_mapping(services['app']['environment'])['CDS_PORT']}"
    assert primary[0] == backup[0] == app
    assert {"max_fails=2", "fail_timeout=5s", "resolve"} <= set(primary[1:]), "forget a failed replica, re-resolve"
    # the same replicas as backups never marked failed: no "no live upstreams" in a rolling restart
    assert {"backup", "max_fails=0", "resolve"} <= set(backup[1:])
    assert set(nginx_directives(nginx_conf, "proxy_pass")) == {"http://app"}
    assert nginx_directives(nginx_conf, "zone") == ["app 64k"]
    assert nginx_directives(nginx_conf, "keepalive") == ["32"], "keep-alive connections to the replicas"
    assert nginx_directives(nginx_conf, "proxy_http_version") == ["1.1"]
    assert "127.0.0.11" in nginx_directives(nginx_conf, "resolver")[0], "re-resolve replicas via Docker DNS"
    # compose's nginx image re-resolves upstream servers (the `resolve` parameter: nginx 1.27.3+)
    assert services["proxy"]["image"].split(":")[1].split("-")[0] >= "1.27"


def test_nginx_retries_hook_calls_only(nginx_conf):
    """A hook call is repeated on another replica after a failed or reset connection (the store
    keeps one judgement per call); other POSTs (feedback) are not."""
    retries = nginx_directives(nginx_conf, "proxy_next_upstream")
    assert sorted(retries) == ["error timeout", "error timeout non_idempotent"]
    hook_block = nginx_conf[nginx_conf.index("location ~ ^/cds-services/[^/]+$"):]
    hook_block = hook_block[:hook_block.index("}")]
    assert "non_idempotent" in hook_block


def test_nginx_buffers_bodies_with_a_deadline(nginx_conf):
    assert nginx_directives(nginx_conf, "proxy_request_buffering") == ["on"]
    assert nginx_directives(nginx_conf, "client_body_timeout") == ["10s"]


def test_nginx_body_limit_matches_the_app(nginx_conf, services, tmp_path):
    environ = as_mapping(services["app"]["environment"])
    limit = assert_cds_environment(environ, "compose app", tmp_path)["MAX_BODY_BYTES"]
    (size,) = nginx_directives(nginx_conf, "client_max_body_size")
    assert nginx_size(size) == limit
    assert f"larger than {limit} bytes" in nginx_conf, "nginx's 413 body must state the same limit"


def test_nginx_health_endpoint_is_what_compose_checks(nginx_conf, services):
    path = urlsplit(services["proxy"]["healthcheck"]["test"][-1]).path
    assert f"location = {path}" in nginx_conf


# --- Kubernetes -----------------------------------------------------------------------------


def manifests() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def one(kind: str) -> dict:
    (doc,) = of_kind(kind)
    return doc


@pytest.mark.parametrize("name, document", manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid_against_the_kubernetes_schema(name, document):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        pytest.fail(f"{name} {document['kind']}: {path}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError as error:
        pytest.fail(f"{name}: {error.message}")


def test_the_manifests_are_the_expected_set():
    kinds = sorted(doc["kind"] for _, doc in manifests())
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job",
                            "PodDisruptionBudget", "Secret", "Service"])


def pod_containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_deployment_replicas_probes_and_resources():
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"]: p["containerPort"] for p in app["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["port"] in port_names
    assert app["command"][:2] == ["lumbar-cds", "serve"]
    assert str(port_names["http"]) in app["command"]
    for container in pod_containers(deployment):
        cli_accepts(container["command"])
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_non_root(kind):
    workload = one(kind)
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    for container in pod_containers(workload):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]


def test_deployment_env_comes_from_the_configmap_and_secret():
    deployment = one("Deployment")
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in app["envFrom"]}
    names = {doc["metadata"]["name"] for doc in of_kind("ConfigMap")}
    assert refs["configMapRef"] in names
    assert refs["secretRef"] == one("Secret")["metadata"]["name"]


def k8s_environment(container: dict) -> dict[str, str]:
    """The CDS_* environment a container gets: envFrom ConfigMaps / Secrets, then env entries."""
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in of_kind("ConfigMap")}
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in of_kind("Secret")}
    environ: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            environ.update(config_maps[ref["configMapRef"]["name"]])
        else:
            environ.update(secrets[ref["secretRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            environ[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            environ[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return environ


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_k8s_env_names_are_settings_and_values_are_accepted(kind, tmp_path):
    for container in pod_containers(one(kind)):
        environ = k8s_environment(container)
        assert environ, f"{kind} {container['name']} gets no settings"
        settings = assert_cds_environment(environ, f"{kind} {container['name']}", tmp_path)
        assert settings["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_every_configmap_and_secret_key_is_a_setting():
    for doc in of_kind("Secret") + [one_ for one_ in of_kind("ConfigMap") if one_["metadata"]["name"] == "lumbar-cds-config"]:
        for key in doc.get("data") or doc.get("stringData"):
            assert key.startswith("CDS_") and key.removeprefix("CDS_") in SETTINGS_BY_KEY, key


def test_app_settings_in_k8s(tmp_path):
    (app,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    settings = assert_cds_environment(k8s_environment(app), "Deployment app", tmp_path)
    assert settings["AUTH_REQUIRED"] is True and settings["TRUST_SANDBOX"] is False
    assert settings["FHIR_ALLOWED_ORIGINS"] and settings["PUBLIC_BASE_URL"] and settings["REDIS_URL"]
    mounts = {m["mountPath"] for m in app["volumeMounts"]}
    assert str(Path(k8s_environment(app)["CDS_TRUSTED_ISSUERS_FILE"]).parent) in mounts
    assert str(Path(settings["SPOOL_DIR"]).parent) in mounts, "the spool must be on a writable volume"


def test_trusted_issuers_configmap_is_mounted_and_parses():
    deployment = one("Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    trust = next(doc for doc in of_kind("ConfigMap") if doc["metadata"]["name"] == volumes["trust"]["configMap"]["name"])
    assert yaml.safe_load(trust["data"]["issuers.yaml"])["issuers"][0]["iss"].startswith("https://")


def test_secret_values_are_marked_placeholders():
    for key, value in one("Secret")["stringData"].items():
        assert "REPLACE-ME" in value, f"{key} must be a clearly marked placeholder"


def test_migration_job():
    job = one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["lumbar-cds", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    images = {c["image"] for c in pod_containers(one("Deployment"))}
    assert images == {container["image"]}, "migrate with the image that will serve"


def test_app_pods_wait_for_the_schema():
    (init,) = one("Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["lumbar-cds", "db", "current"]


def test_service_and_autoscaler_select_the_deployment():
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in app["ports"]}
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
