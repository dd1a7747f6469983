"""Project files that must agree with each other: environment pins, schemas, shipped config."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "workflow" / "schemas"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_conda_environment_pins_equal_the_lock():
    env = yaml.safe_load((REPO / "envs" / "seedsoil.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    locked = lock_pins()
    for requirement in pip_section:
        name, version = requirement.split("==")
        assert locked[name.lower()] == version, (
            f"{name}: env {version}, lock {locked[name.lower()]}"
        )


def test_every_direct_requirement_is_locked():
    locked = lock_pins()
    for line in (REPO / "requirements.in").read_text().splitlines():
        name = line.split("#")[0].split("==")[0].strip().lower()
        if name:
            assert name in locked, f"{name} is in requirements.in but not in requirements.lock"


def properties(schema: dict):
    """Every (path, spec) of a schema's properties, nested objects included."""
    for name, spec in schema.get("properties", {}).items():
        yield name, spec
        for inner, inner_spec in properties(spec):
            yield f"{name}.{inner}", inner_spec


@pytest.mark.parametrize("schema_file", ["config.schema.yaml", "datasets.schema.yaml"])
def test_every_schema_key_has_a_description_and_optional_keys_a_default(schema_file):
    schema = yaml.safe_load((SCHEMAS / schema_file).read_text())
    required = set(schema.get("required", []))
    for name, spec in properties(schema):
        assert spec.get("description"), f"{schema_file}: {name} has no description"
        if name not in required:
            assert "default" in spec, f"{schema_file}: {name} has no default"


def test_shipped_config_is_valid_and_documented():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    jsonschema.validate(config, schema)
    documented = (REPO / "config" / "README.md").read_text()
    for name, spec in properties(schema):
        if "properties" not in spec:  # sections are documented key by key
            assert f"`{name}`" in documented, f"config/README.md does not document {name}"


def test_every_sheet_column_is_documented():
    schema = yaml.safe_load((SCHEMAS / "datasets.schema.yaml").read_text())
    documented = (REPO / "config" / "README.md").read_text()
    for name in schema["properties"]:
        assert f"| `{name}` |" in documented, f"config/README.md does not document column {name}"
