"""The platform files agree with the Procfile and with each other, and declare every setting.

``.railway/railway.py`` is evaluated offline with railway-sdk (its graph is
what Railway would apply). Applying it deletes any variable it does not
declare, so it must name every variable settings/loading.py reads.
"""
import ast
import importlib.util
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def procfile_web_command() -> str:
    line = next(entry for entry in (REPO / "Procfile").read_text().splitlines() if entry.startswith("web:"))
    return line.split(":", 1)[1].strip()


def railway_module():
    spec = importlib.util.spec_from_file_location("railway_iac", REPO / ".railway" / "railway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_railway_py():
    return railway_module().main().to_graph()


def web_service() -> dict:
    return next(r for r in load_railway_py()["resources"] if r.get("name") == "web")


def variables_the_server_reads() -> set[str]:
    """Every name settings/loading.py reads: each is a string constant such as "BOT_TOKEN"."""
    tree = ast.parse((REPO / "settings" / "loading.py").read_text())
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.value)}


def test_railway_iac_starts_the_procfile_command_with_a_db_aware_health_check():
    graph = load_railway_py()
    web = next(r for r in graph["resources"] if r.get("name") == "web")
    assert web["deploy"]["startCommand"] == procfile_web_command()
    assert web["deploy"]["healthcheckPath"] == "/health"
    assert web["deploy"]["preDeployCommand"] == ["flask --app main migrate"]
    assert web["variables"]["DATABASE_URL"]["type"] == "reference"
    assert any(r.get("name") == "postgres" for r in graph["resources"])


def test_railway_json_matches_the_procfile():
    deploy = json.loads((REPO / "railway.json").read_text())["deploy"]
    assert deploy["startCommand"] == procfile_web_command()
    assert deploy["healthcheckPath"] == "/health"


def test_railway_py_has_the_same_build_start_pre_deploy_and_health_check_as_railway_json():
    config = json.loads((REPO / "railway.json").read_text())
    web = web_service()
    assert web["build"] == config["build"]
    assert web["deploy"] == config["deploy"]


def test_railway_py_declares_every_setting_the_server_reads():
    module = railway_module()
    declared = set(web_service()["variables"])
    read = variables_the_server_reads()
    assert {"BOT_TOKEN", "CHANNEL_ID", "LOG_FORMAT", "DATABASE_UNPOOLED_URL"} <= read, "the scan finds settings"
    assert sorted(read - declared - set(module.PROVIDED_BY_RAILWAY)) == []
    assert not declared & set(module.PROVIDED_BY_RAILWAY)


def test_secrets_are_preserved_and_the_database_urls_are_references():
    variables = web_service()["variables"]
    for secret in ("BOT_TOKEN", "WEBHOOK_SECRET", "PAYLOAD_SECRET", "METRICS_TOKEN", "CHANNEL_ID", "ADMIN_IDS",
                   "PLANS"):
        assert variables[secret] == {"type": "preserve"}, secret
    for url in ("DATABASE_URL", "DATABASE_UNPOOLED_URL"):
        assert variables[url] == {"type": "reference", "resource": "database.postgres", "output": url}
