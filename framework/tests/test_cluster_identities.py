"""The identities of a cluster file: what `agentbus up` and `agentbus auth init` admit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from framework_helpers import EchoReply, EchoRequest

from agentbus.framework import ConfigError, MessageContext, Service, handles
from agentbus.framework.auth import OPERATOR, Grants, context_grants
from agentbus.framework.auth import grants as g
from agentbus.framework.auth.cluster import RELAY, cluster_identities
from agentbus.framework.supervisor import ClusterFile
from agentbus.interfaces import request_interface
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.subjects import as_caller, callers, request_subject

ECHO_NAME = "test.clusterecho"
"""A fixed name: this module is imported twice (by pytest and by ``load_service``)."""


class Deployer(Service):
    """Serves echo, and deploys a component named after its identity."""

    name = "deployer"

    @handles(request_interface(ECHO_NAME, "1.0.0", request=EchoRequest, reply=EchoReply))
    async def answer(self, request: EchoRequest, ctx: MessageContext) -> EchoReply:
        return EchoReply(text="", instance=self.instance, correlation_id="-")

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> Grants:
        return g.publish(f"deployer.{environment.get('DEPLOYER_TOPIC', 'none')}")

    @classmethod
    def deployed_identities(cls, name: str, environment: Mapping[str, str]) -> dict[str, Grants]:
        context = {"interfaces": {"provides": [{"name": "thing.make", "version": "2.1.0"}]}}
        return {f"{name}-thing": context_grants(f"{name}-thing", context, REGISTRY)}


def cluster_file(tmp_path: Path, *names: str) -> ClusterFile:
    sections = "".join(
        f'[[service]]\nname = "{n}"\ntarget = "test_cluster_identities:Deployer"\n'
        'env = { DEPLOYER_TOPIC = "from-section" }\n'
        for n in names
    )
    path = tmp_path / "agentbus.toml"
    path.write_text(sections, encoding="utf-8")
    return ClusterFile.load(path)


def test_every_service_its_deployed_component_the_operator_and_the_relay(tmp_path: Path) -> None:
    identities = {i.name: i for i in cluster_identities(cluster_file(tmp_path, "d1"), REGISTRY)}

    assert list(identities) == [OPERATOR, RELAY, "d1", "d1-thing"]
    service = identities["d1"].grants
    assert f"{callers(request_subject(ECHO_NAME, 1))} d1" in service.subscribe
    assert "deployer.from-section" in service.publish  # the section's env decides
    thing = identities["d1-thing"]
    assert thing.role == "deployed"
    assert f"{callers(request_subject('thing.make', 2))} d1-thing" in thing.grants.subscribe
    operator = identities[OPERATOR].grants
    for served in (ECHO_NAME, "thing.make"):
        major = 1 if served == ECHO_NAME else 2
        assert as_caller(request_subject(served, major), OPERATOR) in operator.publish
    assert not any(" " in entry for entry in operator.subscribe), "the operator serves nothing"


def test_an_identity_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="named twice"):
        cluster_identities(cluster_file(tmp_path, "d1", "d1-thing"), REGISTRY)


def test_context_grants_serve_provides_call_consumes_and_refuse_wildcards() -> None:
    context = {
        "interfaces": {
            "provides": [{"name": "sample.greet", "version": "1.0.0"}],
            "consumes": [{"name": "model.catalog", "version": ">=1.0.0,<2.0.0"}],
        }
    }
    grants = context_grants("sample", context, REGISTRY)
    assert f"{callers(request_subject('sample.greet', 1))} sample" in grants.subscribe
    assert as_caller(request_subject("model.catalog", 1), "sample") in grants.publish

    wild = {"interfaces": {"provides": [{"name": "model.>", "version": "1.0.0"}]}}
    with pytest.raises(ConfigError, match="dotted lower-case"):
        context_grants("sample", wild, REGISTRY)
