"""`tm-reporter junit FILE... --machine NAME`: JUnit XML reports imported as one run, for CI
scripts (any framework's reports: pytest --junitxml, Maven Surefire, Gradle, jest-junit,
gotestsum, PHPUnit).

The files are joined into one <testsuites> document (a Surefire run writes one file per test
class), gzipped and posted to POST /tm_api/junit/ with the commit, branch and build URL given,
else those of the CI (tm_reporter.ci). Prints the run's address; exit status 0 when the run
was stored, 1 when not (the server's reason on stderr), 2 for a usage error or a file that is
not XML.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import requests

from tm_reporter.ci import ci_metadata


def joined(paths) -> bytes:
    """One <testsuites> holding every file's suites (a file's root is <testsuites> or one
    <testsuite>). The files are the CI job's own, parsed by the standard library; the server
    parses what it receives with entity expansion refused."""
    root = ET.Element("testsuites")
    names: list[str] = []
    for path in paths:
        document = ET.parse(path).getroot()
        if document.tag == "testsuites":
            name = document.get("name")
            if name:
                names.append(name)
            root.extend(list(document))
        else:
            root.append(document)
    if len(paths) == 1 and names:
        root.set("name", names[0])
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _parser():
    parser = argparse.ArgumentParser(prog="tm-reporter", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    junit = commands.add_parser("junit", help="import JUnit XML reports as one run")
    junit.add_argument("files", nargs="+", metavar="FILE", help="JUnit XML report files")
    junit.add_argument("--machine", required=True, help="the machine the run is of")
    junit.add_argument("--url", default=os.environ.get("TM_URL"),
                       help="Monitor's address (default: $TM_URL)")
    junit.add_argument("--token", default=os.environ.get("TM_TOKEN"),
                       help="machine token (default: $TM_TOKEN)")
    junit.add_argument("--commit", help="default: $TM_COMMIT, else the CI's (GITHUB_SHA, "
                                        "CI_COMMIT_SHA, GIT_COMMIT, BUILDKITE_COMMIT, "
                                        "CIRCLE_SHA1)")
    junit.add_argument("--branch", help="default: $TM_BRANCH, else the CI's")
    junit.add_argument("--build-url", help="default: $TM_BUILD_URL, else the CI's")
    junit.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to wait for the answer (default 60)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not args.url:
        print("tm-reporter: give --url (or set TM_URL)", file=sys.stderr)
        return 2
    try:
        xml = joined(args.files)
    except (OSError, ET.ParseError) as error:
        print(f"tm-reporter: {error}", file=sys.stderr)
        return 2
    ci = ci_metadata(commit=args.commit or os.environ.get("TM_COMMIT"),
                     branch=args.branch or os.environ.get("TM_BRANCH"),
                     build_url=args.build_url or os.environ.get("TM_BUILD_URL"))
    query = urlencode({"machine": args.machine, **{k: v for k, v in ci.items() if v}})
    url = args.url.rstrip("/")
    headers = {"Content-Type": "application/xml", "Content-Encoding": "gzip",
               "User-Agent": "tm-reporter/1.2",
               # The same key if this command is run again for the same files is not wanted
               # (a new run); one key per attempt lets a proxy's retry apply it once.
               "Idempotency-Key": uuid.uuid4().hex}
    if args.token:
        headers["Authorization"] = f"Token {args.token}"
    try:
        response = requests.post(f"{url}/tm_api/junit/?{query}", data=gzip.compress(xml),
                                 headers=headers, timeout=(5, args.timeout))
    except requests.RequestException as error:
        print(f"tm-reporter: {url} unreachable: {error}", file=sys.stderr)
        return 1
    if response.status_code != 201:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:300]
        print(f"tm-reporter: {response.status_code} {detail}", file=sys.stderr)
        return 1
    body = response.json()
    counts = ", ".join(f"{body[k]} {k}" for k in ("passed", "failed", "error", "skipped",
                                                   "xfailed", "xpassed", "retried")
                       if body.get(k))
    print(f"tm-reporter: {body['tests']} tests imported ({counts or 'none'}): "
          f"{url}/machines/runs/{body['run']}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
