"""deploy/k8s: every manifest validates against the Kubernetes OpenAPI schemas (strict: an
unknown field fails), and the manifests keep the promises the README makes about them.

No cluster runs here. The schemas are those bundled by ``kubernetes-validate``; the NATS
configuration is checked by the real nats-server (``-t``) with the pod's environment.
"""

from __future__ import annotations

import copy
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from agentbus.framework.auth.keys import new_seed, public_key
from agentbus.framework.embedded import nats_server_binary

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRETS_EXAMPLE = K8S / "secrets.example.yaml"
IMAGE = "agentbus/agentbus"
APP_UID = 10001
HEALTH = ["agentbus-entrypoint", "health", "--check"]
PLACEHOLDER = "REPLACE_ME"
# The oldest Kubernetes we promise, and the newest the validator knows.
VERSIONS = ("1.30", latest_version())

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)
ALL_DOCS = [(path.name, doc) for path in MANIFEST_FILES for doc in documents(path)]
APPLIED = [doc for name, doc in ALL_DOCS if name != SECRETS_EXAMPLE.name]


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in APPLIED if doc["kind"] == kind]


def named(kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


DEPLOYMENTS = of_kind("Deployment")
WORKLOADS = DEPLOYMENTS + of_kind("StatefulSet")


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def effective(workload: Doc, container: Doc, field: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else pod_spec(workload).get("securityContext", {}).get(field)


def validation_errors(doc: Doc, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return [f"{doc['kind']}/{doc['metadata']['name']} {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def test_the_folder_holds_the_promised_resources() -> None:
    assert len(ALL_DOCS) > 20, f"too few manifests found in {K8S}: {len(ALL_DOCS)}"
    kinds = {doc["kind"] for doc in APPLIED}
    assert {
        "Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment",
        "HorizontalPodAutoscaler", "PodDisruptionBudget",
    } <= kinds  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    errors = [
        f"{name}: {error}" for name, doc in ALL_DOCS for error in validation_errors(doc, version)
    ]
    assert not errors, "\n".join(errors)


def test_the_validator_refuses_an_unknown_field() -> None:
    # Strict validation is what catches a misspelt field: prove it does here.
    broken = copy.deepcopy(DEPLOYMENTS[0])
    pod_spec(broken)["containers"][0]["readinessProbes"] = {}
    assert validation_errors(broken, VERSIONS[0]), "strict validation accepted an unknown field"


def test_the_kustomization_lists_every_manifest_but_the_secrets_example() -> None:
    kustomization = documents(KUSTOMIZATION)[0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    expected = {p.name for p in MANIFEST_FILES} - {SECRETS_EXAMPLE.name}
    assert set(listed) == expected, (
        f"kustomization.yaml lists {sorted(listed)}; the folder has {sorted(expected)}"
    )
    # Applying placeholders would overwrite the real keys on every `kubectl apply -k`.
    assert not of_kind("Secret"), "a Secret is applied by the kustomization"
    assert kustomization["namespace"] == named("Namespace", "agentbus")["metadata"]["name"]


def test_every_deployment_probes_readiness_and_liveness_with_health_check() -> None:
    assert DEPLOYMENTS
    for deployment in DEPLOYMENTS:
        name = deployment["metadata"]["name"]
        for container in pod_spec(deployment)["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                command = container.get(probe, {}).get("exec", {}).get("command")
                assert command == HEALTH, f"{name}/{container['name']} {probe}: {command}"


def test_every_container_runs_as_the_image_user_without_privileges() -> None:
    for workload in WORKLOADS:
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert effective(workload, container, "runAsNonRoot") is True, where
            assert effective(workload, container, "runAsUser") == APP_UID, where
            assert effective(workload, container, "allowPrivilegeEscalation") is False, where
            assert effective(workload, container, "readOnlyRootFilesystem") is True, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert {"requests", "limits"} <= container.get("resources", {}).keys(), where
        # No workload talks to the Kubernetes API: no token in any pod.
        assert pod_spec(workload)["automountServiceAccountToken"] is False, workload["metadata"][
            "name"
        ]


def test_every_image_is_ours() -> None:
    for workload in WORKLOADS:
        for container in containers(workload):
            image = container["image"]
            assert image.split(":")[0] == IMAGE, f"{workload['metadata']['name']}: {image}"


def test_only_the_tool_executor_runs_without_a_seccomp_filter() -> None:
    for workload in WORKLOADS:
        for container in containers(workload):
            profile = effective(workload, container, "seccompProfile")
            unconfined = workload["metadata"]["name"] == container["name"] == "tool-executor"
            expected = "Unconfined" if unconfined else "RuntimeDefault"
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert profile == {"type": expected}, f"{where}: {profile}"
            # bwrap runs without a fresh /proc: the masked /proc of the default is enough.
            assert "procMount" not in container["securityContext"]


def test_no_secret_holds_a_value() -> None:
    secrets = [doc for _, doc in ALL_DOCS if doc["kind"] == "Secret"]
    assert secrets, f"{SECRETS_EXAMPLE.name} describes no Secret"
    for secret in secrets:
        assert "data" not in secret, f"{secret['metadata']['name']} has data"
        values = secret["stringData"]
        assert values, f"{secret['metadata']['name']} lists no key"
        leaked = {key for key, value in values.items() if value != PLACEHOLDER}
        assert not leaked, f"{secret['metadata']['name']}: {sorted(leaked)} not {PLACEHOLDER}"


def referenced_secrets(workload: Doc) -> dict[str, set[str]]:
    """Secret name -> the keys the workload reads (empty: a whole-Secret volume)."""
    refs: dict[str, set[str]] = {}
    for volume in pod_spec(workload).get("volumes", []):
        if "secret" in volume:
            refs.setdefault(volume["secret"]["secretName"], set())
    for container in containers(workload):
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.setdefault(ref["name"], set()).add(ref["key"])
    return refs


def test_every_referenced_secret_and_key_is_described() -> None:
    described = {
        doc["metadata"]["name"]: set(doc["stringData"])
        for doc in documents(SECRETS_EXAMPLE)
        if doc["kind"] == "Secret"
    }
    for workload in WORKLOADS:
        for name, keys in referenced_secrets(workload).items():
            assert name in described, f"{workload['metadata']['name']} needs Secret {name}"
            assert keys <= described[name], f"{name} lacks {sorted(keys - described[name])}"


def test_each_service_mounts_only_its_own_key() -> None:
    cluster = tomllib.loads((ROOT / "deploy" / "cluster.toml").read_text(encoding="utf-8"))
    identities = {service["name"] for service in cluster["service"]}
    for deployment in DEPLOYMENTS:
        name = deployment["metadata"]["name"]
        keys = {s for s in referenced_secrets(deployment) if s.startswith("agentbus-key-")}
        assert keys == {f"agentbus-key-{name}"}, f"{name} mounts {sorted(keys)}"
        container = pod_spec(deployment)["containers"][0]
        env = env_of(container)
        assert env["AGENTBUS_IDENTITY"]["value"] == name
        assert name in identities, f"{name} has no identity in deploy/cluster.toml"
        key_file = Path(env["AGENTBUS_NATS_NKEY_FILE"]["value"])
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[str(key_file.parent)].get("readOnly") is True, f"{name}: key mount"


def test_services_reach_every_nats_node_with_replicated_streams() -> None:
    nodes = named("StatefulSet", "nats")["spec"]["replicas"]
    assert nodes == 3
    service = named("Service", "nats")
    assert service["spec"]["clusterIP"] == "None", "the routes need the headless Service"
    expected = ",".join(f"nats://nats-{i}.nats.$(POD_NAMESPACE).svc:4222" for i in range(nodes))
    for deployment in DEPLOYMENTS:
        env = env_of(pod_spec(deployment)["containers"][0])
        name = deployment["metadata"]["name"]
        assert env["AGENTBUS_NATS_URL"]["value"] == expected, name
        assert env["AGENTBUS_JS_REPLICAS"]["value"] == str(nodes), name
        namespace = env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert namespace == "metadata.namespace", name


def test_deployments_match_the_compose_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    served = {
        name: service["command"]
        for name, service in compose["services"].items()
        if service.get("command", [])[:1] == ["serve"]
    }
    deployments = {d["metadata"]["name"]: pod_spec(d)["containers"][0] for d in DEPLOYMENTS}
    assert set(deployments) == set(served)
    for name, command in served.items():
        assert deployments[name]["args"] == command, name


def test_metrics_are_annotated_for_prometheus() -> None:
    for deployment in DEPLOYMENTS:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = annotations["prometheus.io/port"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        container = pod_spec(deployment)["containers"][0]
        assert {"name": "metrics", "containerPort": int(port)} in container["ports"]
        assert env_of(container)["AGENTBUS_METRICS_PORT"]["value"] == port


def test_the_gateway_and_the_runner_scale_horizontally() -> None:
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind("HorizontalPodAutoscaler")}
    assert targets == {"model-gateway", "workflow-runner"}
    for name in targets:
        named("Deployment", name)  # the target exists
        resources = pod_spec(named("Deployment", name))["containers"][0]["resources"]
        assert "cpu" in resources["requests"], f"{name}: CPU utilisation needs a CPU request"


def test_disruption_budgets_cover_every_workload() -> None:
    budgets = {pdb["metadata"]["name"]: pdb["spec"] for pdb in of_kind("PodDisruptionBudget")}
    assert budgets.pop("nats") == {
        "minAvailable": 2,
        "selector": named("StatefulSet", "nats")["spec"]["selector"],
    }
    for deployment in DEPLOYMENTS:
        name = deployment["metadata"]["name"]
        assert budgets.pop(name) == {
            "maxUnavailable": 1,
            "selector": deployment["spec"]["selector"],
        }, name
    assert not budgets, f"budgets without a workload: {sorted(budgets)}"


def test_nats_keeps_jetstream_on_the_persistent_volume() -> None:
    nats = named("StatefulSet", "nats")
    claims = {claim["metadata"]["name"] for claim in nats["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(nats)["containers"][0]["volumeMounts"]}
    config = named("ConfigMap", "nats-config")["data"]["nats.conf"]
    store = re.search(r'store_dir:\s*"([^"]+)"', config)
    assert store, "nats.conf sets no JetStream store_dir"
    assert mounts.get(store.group(1)) in claims, f"{store.group(1)} is not on a claimed volume"


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value from the variables defined before it."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def test_nats_conf_is_accepted_by_nats_server_with_the_pods_environment(tmp_path: Path) -> None:
    """The real nats-server reads the ConfigMap's nats.conf, the auth Secret's file where the
    pod mounts it, and every variable it names from the pod's environment."""
    nats = named("StatefulSet", "nats")
    container = pod_spec(nats)["containers"][0]
    fields = {"metadata.name": "nats-1", "metadata.namespace": "agentbus"}
    env: dict[str, str] = {}
    for entry in container["env"]:
        source = entry.get("valueFrom", {})
        if "fieldRef" in source:
            env[entry["name"]] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            env[entry["name"]] = "0123456789abcdef"
        else:
            env[entry["name"]] = expand(entry["value"], env)
    assert (
        env["NATS_ROUTE_2"] == "nats-route://route:0123456789abcdef@nats-2.nats.agentbus.svc:6222"
    )

    volumes = {volume["name"]: volume for volume in pod_spec(nats)["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes.get(mount["name"], {})
        folder = tmp_path / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            data = named("ConfigMap", volume["configMap"]["name"])["data"]
            for key, text in data.items():
                (folder / key).write_text(text, encoding="utf-8")
        elif "secret" in volume:
            assert volume["secret"]["secretName"] == "nats-auth"
            user = public_key(new_seed())
            auth = f'authorization: {{"users": [{{"nkey": "{user}"}}]}}\n'
            (folder / "nats-auth.conf").write_text(auth, encoding="utf-8")
    config = tmp_path / container["args"][container["args"].index("--config") + 1].lstrip("/")
    result = subprocess.run(
        [str(nats_server_binary()), "-c", str(config), "-t"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"nats-server refused {config}: {result.stderr}{result.stdout}"
