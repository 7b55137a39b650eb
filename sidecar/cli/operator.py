"""``sidecar operator``: the injector, its RBAC keeper and the fleet view (a kopf operator)::

    sidecar operator [--config operator.conf] [--log-level info] [--log-format json]

The chart (charts/cninfra-operator) runs it as a Deployment of two replicas.
Exit 2 for a bad config file or injection spec; otherwise it runs until
SIGTERM/SIGINT, and kopf's exit status is the command's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("OPERATOR_CONFIG"),
                        help="operator.conf (env OPERATOR_CONFIG); default: every default")
    parser.add_argument("--log-level", default=os.environ.get("INITIAL_LOGLVL") or "info",
                        help="log level (env INITIAL_LOGLVL)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="log output format")


def run(args: argparse.Namespace) -> int:
    from sidecar.config import ConfigError, YamlError, decode, parse_yaml
    from sidecar.inject import InjectError, load_spec
    from sidecar.logging import InvalidLevelError, setup_logging
    from sidecar.operator import OperatorConfig
    from sidecar.operator.runner import Operator

    try:
        setup_logging(args.log_level, args.log_format)
    except (InvalidLevelError, ValueError) as exc:
        print(f"sidecar operator: --log-level: {exc}", file=sys.stderr)
        return 2
    try:
        data = None
        if args.config:
            try:
                data = parse_yaml(Path(args.config).read_text(encoding="utf-8"))
            except (OSError, YamlError) as exc:
                raise ConfigError(f"{args.config}: {getattr(exc, 'strerror', None) or exc}") \
                    from None
        config = decode(OperatorConfig, data, args.config or "operator.conf")
        spec = load_spec(config.spec or None)
    except (ConfigError, InjectError) as exc:
        print(f"sidecar operator: config error: {exc}", file=sys.stderr)
        return 2
    Operator(config, spec).run()
    return 0
