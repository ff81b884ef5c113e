"""Where a run's code came from (commit, branch, build URL), read from the CI's environment.

Used by the pytest plugin and by `tm-reporter junit`; explicit values win, then the first CI
whose variables are set: GitHub Actions, GitLab CI, Jenkins, Buildkite, CircleCI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# (commit, branch, build URL) per CI; a build URL given as a tuple is joined from its parts.
_CIS: list[tuple[str, str, str | tuple[str, ...]]] = [
    ("GITHUB_SHA", "GITHUB_REF_NAME",
     ("GITHUB_SERVER_URL", "/", "GITHUB_REPOSITORY", "/actions/runs/", "GITHUB_RUN_ID")),
    ("CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_JOB_URL"),
    ("GIT_COMMIT", "GIT_BRANCH", "BUILD_URL"),
    ("BUILDKITE_COMMIT", "BUILDKITE_BRANCH", "BUILDKITE_BUILD_URL"),
    ("CIRCLE_SHA1", "CIRCLE_BRANCH", "CIRCLE_BUILD_URL"),
]


def _build_url(spec, env: Mapping[str, str]) -> str:
    if isinstance(spec, str):
        return env.get(spec, "")
    parts = []
    for part in spec:
        if part.isupper():
            value = env.get(part, "")
            if not value:
                return ""
            parts.append(value.rstrip("/") if part.endswith("_URL") else value)
        else:
            parts.append(part)
    return "".join(parts)


def ci_metadata(env: Mapping[str, str] | None = None, commit: str | None = None,
                branch: str | None = None, build_url: str | None = None) -> dict:
    """{commit, branch, build_url}: the values given, else the CI's, else empty strings."""
    env = os.environ if env is None else env
    found = {"commit": "", "branch": "", "build_url": ""}
    for commit_var, branch_var, url_spec in _CIS:
        if env.get(commit_var) or env.get(branch_var):
            found = {"commit": env.get(commit_var, ""), "branch": env.get(branch_var, ""),
                     "build_url": _build_url(url_spec, env)}
            break
    # Jenkins' git plugin names the branch with its remote ("origin/main").
    if found["branch"].startswith("origin/"):
        found["branch"] = found["branch"][len("origin/"):]
    given = {"commit": commit, "branch": branch, "build_url": build_url}
    chosen = {key: value if given[key] is None else str(given[key])
              for key, value in found.items()}
    return {key: chosen[key][:limit]
            for key, limit in (("commit", 100), ("branch", 255), ("build_url", 2048))}
