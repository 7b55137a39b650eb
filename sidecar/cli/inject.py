"""``sidecar inject -f FILE|-``: the operator's mutation, offline, on a YAML stream (as
``linkerd inject``)::

    sidecar inject -f deploy.yaml | kubectl apply -f -
    sidecar inject -f deploy.yaml --image registry.example/cninfra-sidecar:0.1.0
    kubectl get deploy web -o yaml | sidecar inject -f - | kubectl apply -f -
    sidecar inject -f app.yaml --spec <(kubectl -n cninfra get configmap \\
        cninfra-operator-injection -o yaml)          # what your operator injects

Writes the stream to stdout with the sidecar in every pod and pod template
(``cninfra.io/inject: "false"`` keeps one out); running it again changes
nothing. A report per pod template goes to stderr. Exit 0 done, 2 bad input
(nothing is written; the message names the document and the annotation).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any, TextIO

import yaml

from sidecar.config import describe_yaml_error
from sidecar.inject import Decision, InjectError, inject_documents, load_spec, parse_kube_version

_REPORT = {Decision.INJECT: "injected", Decision.PRESENT: "has the sidecar already (unchanged)",
           Decision.OPTED_OUT: 'skipped (cninfra.io/inject: "false")',
           Decision.NOT_ASKED: "not asked"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", required=True, metavar="FILE",
                        help="the YAML stream to inject ('-' for stdin)")
    parser.add_argument("--spec", metavar="FILE",
                        help="what to inject: the operator's injection spec (spec.yaml, or its "
                             "ConfigMap as kubectl prints it); default: the operator chart's "
                             "default values")
    parser.add_argument("--image", metavar="IMAGE",
                        help="the sidecar image to inject (REGISTRY/cninfra-sidecar:TAG); "
                             "default: the spec's")
    parser.add_argument("--kube-version", metavar="VERSION",
                        help="the cluster's Kubernetes version: a native sidecar from 1.29 on "
                             "(nativeSidecar: auto), else a second container; default: a "
                             "current one")


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    source = "stdin" if args.filename == "-" else args.filename
    try:
        if args.kube_version is not None:
            parse_kube_version(args.kube_version)
        spec = load_spec(args.spec)
        if args.image:
            spec = replace(spec, container={**spec.container, "image": args.image})
        if args.filename == "-":
            text = stdin.read()
        else:
            with open(args.filename, encoding="utf-8") as file:
                text = file.read()
        docs: list[Any] = list(yaml.safe_load_all(text))
        outcomes = inject_documents(docs, spec, native=spec.native_on(args.kube_version))
    except (InjectError, ValueError) as exc:
        print(f"sidecar inject: {source}: {exc}", file=stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"sidecar inject: {source}: not YAML: {describe_yaml_error(exc)}", file=stderr)
        return 2
    except OSError as exc:
        print(f"sidecar inject: {source}: {exc.strerror or exc}", file=stderr)
        return 2
    yaml.safe_dump_all(docs, stdout, sort_keys=False, explicit_start=len(docs) > 1)
    for outcome in outcomes:
        print(f"{outcome.what} {_REPORT[outcome.decision]}", file=stderr)
    if not outcomes:
        print(f"sidecar inject: {source}: no pod or pod template found", file=stderr)
    return 0
