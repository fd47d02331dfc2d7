"""The platform files agree with the Procfile: the start command is all the server needs."""
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def procfile_web_command() -> str:
    line = next(entry for entry in (REPO / "Procfile").read_text().splitlines() if entry.startswith("web:"))
    return line.split(":", 1)[1].strip()


def load_railway_py():
    spec = importlib.util.spec_from_file_location("railway_iac", REPO / ".railway" / "railway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main().to_graph()


def test_railway_iac_starts_the_procfile_command_with_a_db_aware_health_check():
    graph = load_railway_py()
    web = next(r for r in graph["resources"] if r.get("name") == "web")
    assert web["deploy"]["startCommand"] == procfile_web_command()
    assert web["deploy"]["healthcheckPath"] == "/health"
    assert web["deploy"]["preDeployCommand"] == ["flask --app main db upgrade"]
    assert web["variables"]["DATABASE_URL"]["type"] == "reference"
    assert any(r.get("name") == "postgres" for r in graph["resources"])


def test_railway_json_matches_the_procfile():
    deploy = json.loads((REPO / "railway.json").read_text())["deploy"]
    assert deploy["startCommand"] == procfile_web_command()
    assert deploy["healthcheckPath"] == "/health"
