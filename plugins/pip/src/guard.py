"""salve's guard around one `pip install` in a Python environment.

The pip plugin writes this file into the run's staging directory and runs it
with the environment's own interpreter, before and after the install:

  workdir    create the task's directory for the files below, owned by the
             user pip runs as (run as root)
  snapshot   record `pip check` problems and which modules import, before
  review     read `pip install --dry-run --report` and refuse an install that
             would break an installed package's requirements, downgrade a
             package, or shadow one the OS package manager owns
  installed  print the versions of a project found in one site directory
             (one line means no stale metadata is left beside the new copy)
  imports    every module that imported before still imports
  pip-check  `pip check` shows no problem that was not there before

It needs Python 3.8 (importlib.metadata) and the packaging library, which
every pip carries as pip._vendor.packaging. With SALVE_PIP set it uses the pip
wheel salve fetched instead of the environment's own. Exit status 0 means fine, 1 a
refused or failed check (stderr says why), 2 a usage error.
"""

import argparse
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys

# An environment without pip runs the wheel salve fetched (SALVE_PIP names
# its `pip` entry); packaging is imported from it, then it leaves sys.path so
# that it is not mistaken for an installed distribution.
PIP_WHEEL_ENTRY = os.environ.get("SALVE_PIP")
PIP_WHEEL = os.path.dirname(PIP_WHEEL_ENTRY) if PIP_WHEEL_ENTRY else None
if PIP_WHEEL:
    sys.path.insert(0, PIP_WHEEL)
try:
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version
except ImportError:  # a pip that does not vendor packaging
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version
if PIP_WHEEL:
    sys.path.remove(PIP_WHEEL)
PIP = [sys.executable, PIP_WHEEL_ENTRY] if PIP_WHEEL_ENTRY else [sys.executable, "-m", "pip"]

IMPORT_TIMEOUT = 120
PIP_CHECK_TIMEOUT = 600


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text):
    try:
        return Version(text)
    except InvalidVersion:
        return None


def fail(problems):
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1)


def installed_distributions():
    """The distributions the interpreter sees, first on sys.path wins."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in found:
            found[canonical(name)] = dist
    return found


def pip_check_problems():
    """`pip check` problems, keyed so a version change alone is not new."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        PIP + ["check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        env=env,
        timeout=PIP_CHECK_TIMEOUT,
    )
    keys = {}
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("No broken requirements"):
            continue
        missing = re.match(r"^(\S+) \S+ requires (\S+), which is not installed", line)
        conflict = re.match(r"^(\S+) \S+ has requirement .*, but you have (\S+) \S+", line)
        platform = re.match(r"^(\S+) \S+ is not supported on this platform", line)
        if missing:
            key = "%s requires %s" % (canonical(missing[1]), canonical(missing[2].split("[")[0]))
        elif conflict:
            key = "%s requires %s" % (canonical(conflict[1]), canonical(conflict[2]))
        elif platform:
            key = "%s platform" % canonical(platform[1])
        else:
            key = line
        keys[key] = line
    return keys


def imports(module):
    """True when `module` imports in a fresh interpreter."""
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, module],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=IMPORT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return False, "timed out after %d s" % IMPORT_TIMEOUT
    lines = result.stderr.strip().splitlines()
    return result.returncode == 0, lines[-1] if lines else ""


def workdir(args):
    os.makedirs(args.path, exist_ok=True)
    if args.owner:
        shutil.chown(args.path, user=args.owner)
    print("work directory: %s" % args.path)


def snapshot(args):
    importable = [m for m in args.module if imports(m)[0]]
    state = {"pip_check": pip_check_problems(), "importable": importable}
    with open(args.state, "w") as out:
        json.dump(state, out)
    print("before: %d pip check problem(s); importable: %s"
          % (len(state["pip_check"]), ", ".join(importable) or "none"))


def review(args):
    with open(args.report) as report_file:
        report = json.load(report_file)
    changes = {}
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        changes[canonical(meta.get("name", ""))] = meta

    target_key = canonical(args.name)
    wanted = parse_version(args.version)
    problems = []
    target = changes.get(target_key)
    if target is None or parse_version(target.get("version", "")) != wanted:
        problems.append("pip would not install %s %s: its report installs %s"
                        % (args.name, args.version,
                           ", ".join("%s %s" % (m.get("name"), m.get("version"))
                                     for m in changes.values()) or "nothing"))

    protected = dict(p.split("=", 1) for p in args.protect)
    installed = installed_distributions()
    for key, meta in changes.items():
        new = parse_version(meta.get("version", ""))
        if key in protected and key != target_key:
            problems.append("pip would install %s %s over the copy %s"
                            % (meta.get("name"), meta.get("version"), protected[key]))
        old = installed.get(key)
        old_version = parse_version(old.version) if old is not None else None
        if key != target_key and old_version is not None and new is not None and new < old_version:
            problems.append("pip would downgrade %s from %s to %s"
                            % (meta.get("name"), old.version, meta.get("version")))

    for key, dist in installed.items():
        if key in changes:
            continue
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            required = canonical(requirement.name)
            if required not in changes:
                continue
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            new_version = changes[required].get("version", "")
            if requirement.specifier.contains(new_version, prereleases=True):
                continue
            current = installed.get(required)
            if current is not None and not requirement.specifier.contains(
                    current.version, prereleases=True):
                continue  # already unmet before this install
            problems.append("%s %s requires %s, but pip would install %s %s"
                            % (dist.metadata["Name"], dist.version, requirement,
                               changes[required].get("name"), new_version))

    if problems:
        fail(["refusing to install %s==%s:" % (args.name, args.version)] + problems)
    print("pip would install: %s" % ", ".join(
        "%s %s" % (m.get("name"), m.get("version")) for m in changes.values()))


def installed(args):
    key = canonical(args.name)
    found = sorted(
        (dist for dist in metadata.distributions(path=[args.site])
         if canonical(dist.metadata["Name"] or "") == key),
        key=lambda d: str(d._path) if hasattr(d, "_path") else d.version,
    )
    for dist in found:
        version = parse_version(dist.version)
        print(version if version is not None else dist.version)
    if len(found) != 1:
        where = [str(getattr(d, "_path", d.version)) for d in found]
        fail(["expected one copy of %s in %s, found %d: %s"
              % (args.name, args.site, len(found), ", ".join(where) or "none")])


def imports_check(args):
    with open(args.state) as state_file:
        state = json.load(state_file)
    problems = []
    for module in state["importable"]:
        ok, why = imports(module)
        if not ok:
            problems.append("%s no longer imports: %s" % (module, why))
    if problems:
        fail(problems)
    print("imports: %s" % (", ".join(state["importable"]) or "nothing to import"))


def pip_check(args):
    with open(args.state) as state_file:
        before = json.load(state_file)["pip_check"]
    after = pip_check_problems()
    new = [line for key, line in sorted(after.items()) if key not in before]
    if new:
        fail(["pip check shows new problems:"] + new)
    print("pip check: no new problems (%d before, %d now)" % (len(before), len(after)))


def main():
    parser = argparse.ArgumentParser(prog="salve-pip-guard")
    commands = parser.add_subparsers(dest="command")
    command = commands.add_parser("workdir")
    command.add_argument("--path", required=True)
    command.add_argument("--owner")
    command = commands.add_parser("snapshot")
    command.add_argument("--state", required=True)
    command.add_argument("--module", action="append", default=[])
    command = commands.add_parser("review")
    command.add_argument("--report", required=True)
    command.add_argument("--name", required=True)
    command.add_argument("--version", required=True)
    command.add_argument("--protect", action="append", default=[])
    command = commands.add_parser("installed")
    command.add_argument("--site", required=True)
    command.add_argument("--name", required=True)
    command = commands.add_parser("imports")
    command.add_argument("--state", required=True)
    command = commands.add_parser("pip-check")
    command.add_argument("--state", required=True)
    args = parser.parse_args()
    handlers = {"workdir": workdir, "snapshot": snapshot, "review": review, "installed": installed,
                "imports": imports_check, "pip-check": pip_check}
    if args.command not in handlers:
        parser.print_usage(sys.stderr)
        sys.exit(2)
    handlers[args.command](args)


if __name__ == "__main__":
    main()
