"""Write deploy/kubernetes/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yaml: the same rules as a
Prometheus Operator `PrometheusRule`, so that the alerts have one source. `make monitoring` runs this; `--check` only
says whether the file is up to date (the tests run that).

    python -m tools.monitoring [--check] [--rules PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
OUT = REPO / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (an `expr:` over two lines) as YAML blocks, as they are written in the rules file."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockStrings.add_representer(str, _string)


def prometheus_rule(rules: dict[str, Any], source: str) -> str:
    """The PrometheusRule manifest holding `rules`' groups, with a header naming `source`."""
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "altinn-receiver", "labels": {"app.kubernetes.io/name": "altinn-receiver"}},
        "spec": {"groups": rules["groups"]},
    }
    header = f"# Generated from {source} by `make monitoring`: edit that file, not this one.\n"
    return header + yaml.dump(manifest, Dumper=_BlockStrings, sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=RULES, help="the Prometheus rules file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="the PrometheusRule to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only check that --out is what would be written")
    args = parser.parse_args(argv)
    source = args.rules.resolve().relative_to(REPO) if args.rules.resolve().is_relative_to(REPO) else args.rules
    text = prometheus_rule(yaml.safe_load(args.rules.read_text(encoding="utf-8")), str(source))
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is not up to date with {args.rules}: run `make monitoring`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
