"""docker-compose.yml cannot be started here (no Docker engine); what can be checked without one is:
every service a service depends on exists in its profiles, and the settings the containers set are
settings this release reads (a renamed setting would otherwise be ignored silently)."""

from pathlib import Path

import pytest
import yaml

from rag.settings import IndexBackend, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def profiles(name):
    return set(SERVICES[name].get("profiles", [])) or {"*"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_exist_in_the_same_profile(name):
    deps = SERVICES[name].get("depends_on", [])
    for dep in deps if isinstance(deps, list) else deps.keys():
        assert dep in SERVICES, f"{name} depends on unknown {dep}"
        assert "*" in profiles(dep) or profiles(name) & profiles(dep), f"{name} needs {dep}, started in other profiles"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "RAG_INDEX_DIR" in s.get("environment", {})))
def test_container_settings_are_settings(name, monkeypatch):
    env = {k: str(v) for k, v in SERVICES[name]["environment"].items() if k.startswith("RAG_")}
    known = set(Settings.model_fields)
    for key in env:
        assert key.removeprefix("RAG_").split("__")[0].lower() in known, f"{name}: {key} is not a setting"
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("${GENERATOR_BACKEND:-local}", "local"))
    s = Settings()
    if "scale" in profiles(name):
        assert s.index.backend is IndexBackend.milvus and s.milvus.uri.startswith("http://") and s.redis_url


def test_the_proxy_balances_every_api_replica():
    conf = (ROOT / "service" / "nginx-scale.conf").read_text()
    replicas = [n for n, s in SERVICES.items() if "scale" in profiles(n) and n.startswith("api-")]
    assert len(replicas) >= 2 and all(f"server {r}:8000" in conf for r in replicas)
