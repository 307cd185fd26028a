"""`make test`: the whole test suite against real PostgreSQL and Redis (found or embedded, as for
`make run`), after compiling the translation catalogues. pytest's exit code 5 ("no tests collected")
is reported as a failure: a test run that ran nothing proves nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys

from services import ROOT, ServiceError, service_environment, stop_servers


def main(argv: list[str]) -> int:
    try:
        env, servers = service_environment()
    except ServiceError as exc:
        print(f"make test: {exc}", file=sys.stderr)
        return 1
    env["DJANGO_SETTINGS_MODULE"] = "crm.settings.test"
    try:
        if shutil.which("msgfmt") and any((ROOT / "locale").glob("*/LC_MESSAGES/*.po")):
            subprocess.run(
                [sys.executable, "manage.py", "compilemessages", "--ignore=.venv", "-v0"],
                cwd=ROOT,
                env=env,
                check=True,
            )
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--create-db", *argv]
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        if code == 5:
            print("pytest collected no tests: failing the run.")
            return 1
        return code
    finally:
        stop_servers(servers)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
