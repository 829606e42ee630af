"""How `pytest -n 2 --dist loadfile` shares the suite between its workers (tests/conftest.py installs it).

xdist's loadfile sends each test file whole to one worker, so a file's module-scoped fixtures (a deployed
host, a seeded table) are built once. Two refinements keep both workers busy until the end:

- files whose tests share nothing (INDEPENDENT_FILES: every Molecule scenario starts and destroys its own
  hosts) are split, one unit per test, so two scenarios of several minutes each run side by side;
- files that read the session's deployed host (SHARED_DEPLOYMENT_FILES, tests/support/deployment.py) are one
  unit, so one worker deploys it once and runs them one after the other;
- the units go out in collection order, which tests/conftest.py sorts with the target-host files first:
  xdist's default puts files with the most tests first, which starts the few-but-longest host tests last
  and leaves one worker alone with them at the end.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

# Test files whose every test is a unit of its own (no module-scoped state between them).
INDEPENDENT_FILES = frozenset({"tests/hosts/test_molecule.py"})
# Test files that use the `deployment` fixture (tests/hosts/conftest.py): one unit, named after the first.
SHARED_DEPLOYMENT_FILES = ("tests/hosts/test_deploy.py", "tests/hosts/test_ffmpeg.py", "tests/hosts/test_liveness.py")


class FileScheduling(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path in INDEPENDENT_FILES:
            return nodeid
        return SHARED_DEPLOYMENT_FILES[0] if path in SHARED_DEPLOYMENT_FILES else path

    def schedule(self) -> None:
        # The collection's order is the schedule (slowest first); xdist would otherwise sort by test count.
        self.config.option.loadscopereorder = False
        super().schedule()
