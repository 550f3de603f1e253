"""Deployment files, validated offline: the Kubernetes overlays rendered by `kubectl kustomize` and
checked against the Kubernetes JSON schemas (kubernetes-validate), the compose file against the
compose-spec schema (deploy/schemas/), and the Dockerfile against the rules the project sets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ["lab", "pilot", "production"]
SERVICES = {"camera": 50051, "pose": 50052, "grasp": 50053, "shadow": 50054, "flywheel": 50055}
# The oldest Kubernetes the manifests promise (gRPC probes are GA since 1.27) and the newest the
# bundled schemas know.
K8S_VERSIONS = ["1.29.0", "latest"]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (needed for `kubectl kustomize`)")
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / request.param)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return request.param, [d for d in yaml.safe_load_all(result.stdout) if d]


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(rendered, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]'")
    version = kubernetes_validate.latest_version() if version == "latest" else version
    _, docs = rendered
    errors = []
    for d in docs:
        try:
            # strict: unknown fields (a misspelt key Kubernetes would silently drop) are errors.
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {err.message} at {list(err.path)}")
    assert not errors, "\n".join(errors)


def test_every_grpc_service_has_a_deployment_service_and_grpc_probes(rendered):
    _, docs = rendered
    deployments, services = _by_kind(docs, "Deployment"), _by_kind(docs, "Service")
    assert set(deployments) == set(SERVICES)
    for name, port in SERVICES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"] == [name]
        assert {p["containerPort"] for p in c["ports"]} == {port, port - 41000}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == port, (name, probe)
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert ports == {"grpc": port, "metrics": port - 41000}
        # Every service reads its settings from the generated ConfigMap.
        cm = c["envFrom"][0]["configMapRef"]["name"]
        assert cm in _by_kind(docs, "ConfigMap")


def test_redis_is_a_stateful_set_with_a_volume_and_append_only(rendered):
    _, docs = rendered
    redis = _by_kind(docs, "StatefulSet")["redis"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    (c,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--appendonly" in c["args"] and c["args"][c["args"].index("--appendonly") + 1] == "yes"
    assert {m["name"] for m in c["volumeMounts"]} == {claim["metadata"]["name"]}


def test_pose_autoscales_and_overlays_set_stage_namespace_and_tag(rendered):
    stage, docs = rendered
    hpa = _by_kind(docs, "HorizontalPodAutoscaler")["pose"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pose"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in _by_kind(docs, "Deployment")["pose"]["spec"], "the HPA owns pose's replica count"
    namespace = f"graspstack-{stage}"
    assert _by_kind(docs, "Namespace")[namespace]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    (cm,) = _by_kind(docs, "ConfigMap").values()
    assert cm["data"]["GRASPSTACK_POSE_STAGE"] == stage
    for d in _by_kind(docs, "Deployment").values():
        image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(r"graspstack:\d+\.\d+\.\d+(-\w+)?", image), image  # a release tag, never :dev
        assert d["spec"]["template"]["metadata"]["labels"]["graspstack.io/stage"] == stage


def test_production_has_more_headroom_than_the_lab():
    hpa = {}
    for stage in OVERLAYS:
        text = (DEPLOY / "k8s" / "overlays" / stage / "kustomization.yaml").read_text()
        hpa[stage] = int(re.search(r"/spec/maxReplicas\n\s+value: (\d+)", text).group(1))
    assert hpa["lab"] < hpa["pilot"] < hpa["production"]


# -- compose --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_matches_the_compose_spec_schema(compose):
    jsonschema = pytest.importorskip("jsonschema", reason="installed with kubernetes-validate (dev extra)")
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    # The vendored revision declares a non-standard $schema URI; its keywords are draft-07's.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    # The schema does reject what compose would: an unknown service key.
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["bogus"] = 1
    assert list(validator.iter_errors(broken))


def test_compose_runs_the_whole_system(compose):
    services = compose["services"]
    assert set(services) == {*SERVICES, "redis", "prometheus", "grafana"}
    for name, port in SERVICES.items():
        s = services[name]
        assert s["command"] == [name]
        assert s["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert s["healthcheck"]["test"] == ["CMD", "python", "-m", "graspstack.runtime.health", name]
        assert s["depends_on"]["redis"]["condition"] == "service_healthy"
        assert s["environment"][f"GRASPSTACK_{name.upper()}_REDIS_URL"] == "redis://redis:6379/0"
        assert s["ports"] == [f"{port}:{port}"]
    assert services["pose"]["depends_on"]["shadow"]["condition"] == "service_healthy"
    assert services["pose"]["environment"]["GRASPSTACK_POSE_SHADOW_TARGET"] == "shadow:50054"
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]
    prom = services["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus-compose.yml" in prom["command"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_compose_prometheus_scrapes_every_service_by_name():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-compose.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "graspstack"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:{port - 41000}" for name, port in SERVICES.items()}


# -- Dockerfile -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    text = text.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _instr(lines: list[str], name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0].upper() == name]


def test_dockerfile_base_is_pinned_python_3_11_slim(dockerfile):
    args = dict(a.split("=", 1) for a in _instr(dockerfile, "ARG") if "=" in a)
    for base in _instr(dockerfile, "FROM"):
        image = base.split()[0]
        image = args.get(image.strip("${}"), image) if image.startswith("$") else image
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_dockerfile_runs_as_non_root_with_a_health_check(dockerfile):
    user = _instr(dockerfile, "USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    (check,) = _instr(dockerfile, "HEALTHCHECK")
    assert "graspstack.runtime.health" in check
    assert _instr(dockerfile, "ENTRYPOINT") == ['["graspstack", "serve"]']


def test_dockerfile_installs_cpu_torch_only(dockerfile):
    runs = " ".join(_instr(dockerfile, "RUN"))
    assert "torch==2.13.0+cpu" in runs and "https://download.pytorch.org/whl/cpu" in runs
    assert "pip install -c constraints.txt" in runs
    assert not re.search(r"\bcu\d{2,3}\b|nvidia|cuda", runs.replace("torch.version.cuda", "")), "a CUDA build"


def test_dockerfile_copies_only_what_exists(dockerfile):
    root = DEPLOY.parent
    for src in _instr(dockerfile, "COPY"):
        if src.startswith("--from"):
            continue
        for path in src.split()[:-1]:
            assert (root / path).exists(), path
