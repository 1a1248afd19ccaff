"""deploy/ checked without Docker or a cluster: parses, schema-valid, generated, metrics exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft201909Validator

from processor import manifests
from processor import topics as t
from processor.metrics import Metrics
from processor.settings import REPO_ROOT
from tests.brokers.apache_kafka import kafka_version
from tests.support.node_tools import COMPOSE_SCHEMA, ensure, validate_resources

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
#: Kubernetes version whose API schemas (bundled by kubernetes-validate) the manifests must meet.
K8S_VERSION = "1.31.0"


def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    out = []
    for resource in kustomization["resources"]:
        path = K8S / resource
        assert path.is_file(), f"kustomization lists {resource}, which does not exist"
        out += [(path, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return out


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    ensure()
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=str)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_compose_runs_kafka_kraft_topics_two_workers_prometheus_grafana() -> None:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    assert set(services) == {"kafka", "topics", "worker-1", "worker-2", "prometheus", "grafana"}
    # The Kafka the tests run (tests/brokers/kafka-pom.xml).
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert services["topics"]["command"] == ["topics", "apply"]
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert worker["environment"]["TOUCHPOINT_WEB_HOST"] == name
        assert worker["volumes"] == [f"{name}-data:/var/lib/touchpoint"]
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    sources = ["prometheus/prometheus.yml", "prometheus/alerts.yml", "grafana/provisioning",
               "grafana/dashboards"]  # fmt: skip
    for source in sources:
        assert any(m.startswith(f"../{source}:") for m in mounts), source
        assert (DEPLOY / source).exists(), f"compose mounts deploy/{source}, which is missing"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["worker-1:6066", "worker-2:6066"]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DEPLOY / "docker" / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_state_on_a_volume_and_a_healthcheck() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'VOLUME ["/var/lib/touchpoint"]' in text
    assert "TOUCHPOINT_DATA_DIR=/var/lib/touchpoint" in text
    assert re.search(r"^HEALTHCHECK .*\n.*/health", text, re.M)


@pytest.mark.parametrize("kind", ["ConfigMap", "Service", "StatefulSet", "NetworkPolicy"])
def test_core_manifests_meet_the_kubernetes_api_schema(kind: str) -> None:
    docs = [d for _, d in _k8s_docs() if d["kind"] == kind]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_custom_resources_meet_their_operators_schemas() -> None:
    groups = {d["apiVersion"].rpartition("/")[0] for _, d in _k8s_docs()}
    # Kubernetes' own API groups are core (""), one word (apps) or *.k8s.io; the rest are CRDs.
    operators = {g for g in groups if "." in g and not g.endswith(".k8s.io")}
    custom = [d for _, d in _k8s_docs() if d["apiVersion"].rpartition("/")[0] in operators]
    kinds = {d["kind"] for d in custom}
    assert kinds == {"KafkaUser", "KafkaTopic", "PodMonitor", "PrometheusRule"}
    strimzi = {d["apiVersion"] for d in custom if d["apiVersion"].startswith("kafka.strimzi.io/")}
    assert strimzi == {manifests.STRIMZI_API}  # v1beta2 is gone from Strimzi 1.0
    result = validate_resources(custom)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line for line in lines if line["errors"]] == [], result.stderr
    assert result.returncode == 0, result.stderr
    assert len(lines) == len(custom)


def test_custom_resource_validation_catches_a_wrong_field() -> None:
    (user,) = [d for _, d in _k8s_docs() if d["kind"] == "KafkaUser"]
    broken = json.loads(json.dumps(user))
    broken["spec"]["authorization"]["acls"][0]["operations"] = "Read"
    result = validate_resources([broken])
    assert result.returncode == 1
    assert "must be array" in result.stdout


def test_network_policy_admits_only_workers_clients_and_prometheus_to_the_port() -> None:
    (policy,) = [d for _, d in _k8s_docs() if d["kind"] == "NetworkPolicy"]
    (sts,) = [d for _, d in _k8s_docs() if d["kind"] == "StatefulSet"]
    assert policy["spec"]["podSelector"] == sts["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "web", "protocol": "TCP"}]
    assert len(rule["from"]) == 3


def test_kafka_user_may_use_the_groups_of_the_worker_and_the_replay_tool() -> None:
    from processor.kafka.tools import REPLAY_GROUP_PREFIX

    (user,) = [d for _, d in _k8s_docs() if d["kind"] == "KafkaUser"]
    groups = {
        (a["resource"]["name"], a["resource"]["patternType"])
        for a in user["spec"]["authorization"]["acls"]
        if a["resource"]["type"] == "group"
    }
    assert (f"{REPLAY_GROUP_PREFIX}.", "prefix") in groups


def test_statefulset_keeps_state_on_a_claim_and_probes_health_and_ready() -> None:
    (sts,) = [d for _, d in _k8s_docs() if d["kind"] == "StatefulSet"]
    spec = sts["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    (container,) = spec["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/touchpoint"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["TOUCHPOINT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert env["TOUCHPOINT_API_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    config = next(d for _, d in _k8s_docs() if d["kind"] == "ConfigMap")["data"]
    assert config["TOUCHPOINT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TOUCHPOINT_KAFKA_SASL_MECHANISM"].startswith("SCRAM-")


def test_custom_resources_have_the_fields_their_operators_need() -> None:
    kinds = {d["kind"]: d for _, d in _k8s_docs()}
    monitor = kinds["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"]
        == (kinds["StatefulSet"]["spec"]["selector"]["matchLabels"])
    )
    user = kinds["KafkaUser"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    rule = kinds["PrometheusRule"]
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert "expr" in r


def test_generated_resources_are_current() -> None:
    assert manifests.stale() == [], "run `python -m processor.manifests`"


def test_kafka_topics_match_topics_dir() -> None:
    path = K8S / "generated" / "kafka-topics.yaml"
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    specs = t.load(REPO_ROOT / "topics")
    assert {d["spec"]["topicName"] for d in docs} == set(specs)
    for doc in docs:
        spec = specs[doc["spec"]["topicName"]]
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        assert doc["kind"] == "KafkaTopic"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == manifests.CLUSTER
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"])
        assert doc["spec"]["partitions"] == spec.partitions
        assert doc["spec"]["config"] == spec.config


def test_prometheus_rule_wraps_the_alert_rules() -> None:
    alerts = yaml.safe_load(manifests.ALERTS.read_text(encoding="utf-8"))
    rule = manifests.prometheus_rule(alerts)
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == alerts["groups"]


def _metric_names() -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("", "_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in Metrics.create().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "query") and isinstance(v, str)]
        return found + [e for v in node.values() for e in _expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return []


def test_every_metric_name_used_in_deploy_exists() -> None:
    """PromQL in dashboards and rules, and any `touchpoint_*` name in the manifests."""
    known = _metric_names()
    used: dict[str, set[str]] = {}
    recorded: set[str] = set()
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix not in (".json", ".yml", ".yaml") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            texts = _expressions(json.loads(text))
        else:
            docs = list(yaml.safe_load_all(text))
            texts = _expressions(docs) if "grafana" in path.parts or "rules" in text else [text]
            recorded |= {r for r in re.findall(r"record:\s*(\S+)", text)}
        for expr in texts:
            for name in re.findall(r"\btouchpoint_[a-z0-9_]+", expr):
                used.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    unknown = {n: sorted(p) for n, p in used.items() if n not in known | recorded}
    assert unknown == {}
