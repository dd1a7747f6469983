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


def test_container_definition_installs_the_lock_with_the_conda_python():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    env = yaml.safe_load((REPO / "envs" / "seedsoil.yaml").read_text())
    python = next(item for item in env["dependencies"] if str(item).startswith("python="))
    assert base.startswith(f"python:{python.split('=')[1]}")
    assert any("-r requirements.lock" in line for line in lines if line.startswith("RUN "))
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_licence_and_citation_agree_with_pyproject():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert (citation["version"], citation["license"]) == (project["version"], "MIT")
    assert citation["references"][0]["doi"] == "10.1007/978-3-030-80962-1_57-1"


def test_workflow_catalog_file_is_valid():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True
    assert catalog["usage"]["mandatory-flags"]["flags"]
    assert catalog["usage"]["report"] is True


def test_snakefile_container_is_a_pinned_conda_image_the_catalog_declares():
    import re

    images = re.findall(r'^container:\s*"([^"]+)"', (REPO / "Snakefile").read_text(), re.M)
    assert len(images) == 1
    name, _, tag = images[0].removeprefix("docker://").partition(":")
    # jobs build envs/seedsoil.yaml inside it (--software-deployment-method conda apptainer)
    assert images[0].startswith("docker://") and ("conda" in name or "miniforge" in name)
    assert tag and tag != "latest"
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["apptainer+conda"] is True
