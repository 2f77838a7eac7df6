"""Parses every deployment file under docker/: YAML and JSON files load, the Prometheus
configuration and its rules pass `promtool check config`, the compose file names the services
the monitoring needs, and every dashboard panel has a query. (That each query returns a series
from a live Prometheus is tested by tests/integration/test_metrics.py.)

Usage: python3 check_docker_files.py DOCKER_DIR; exit 1 with every problem on a failure."""

import json
import os
import subprocess
import sys

import yaml

REQUIRED_SERVICES = {"postgres", "kafka", "capture", "apply", "prometheus", "grafana"}


def main(root):
    problems = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    if name.endswith((".yml", ".yaml")):
                        yaml.safe_load(f)
                    elif name.endswith(".json"):
                        json.load(f)
            except (yaml.YAMLError, ValueError) as e:
                problems.append(f"{path}: does not parse: {e}")
    with open(os.path.join(root, "compose.yml"), encoding="utf-8") as f:
        services = set((yaml.safe_load(f) or {}).get("services", {}))
    if not REQUIRED_SERVICES <= services:
        problems.append(f"{root}/compose.yml: services {sorted(REQUIRED_SERVICES - services)} "
                        "are missing")
    with open(os.path.join(root, "grafana", "dashboards", "dualsync.json"), encoding="utf-8") as f:
        for panel in json.load(f)["panels"]:
            if not [t for t in panel.get("targets", []) if t.get("expr", "").strip()]:
                problems.append(f"dashboard panel {panel.get('title')!r} has no query")
    proc = subprocess.run(["promtool", "check", "config",
                           os.path.join(root, "prometheus", "prometheus.yml")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        problems.append(f"promtool check config: {proc.stdout}{proc.stderr}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
