"""docs/deployment.md's deploy, command by command, on a real PostgreSQL server: migrate,
check, two workers, a run started and shown, the workers listed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

import legato
from tests.acceptance.cli_driver import LEGATO, REPO_ROOT
from tests.fixtures.db import postgres_url

pytestmark = pytest.mark.postgres_only

DOC = REPO_ROOT / "docs" / "deployment.md"


def deploy_block() -> list[str]:
    text = DOC.read_text("utf-8")
    block = re.search(r"## The whole deploy.*?```bash\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md has no deploy block"
    joined = block.group(1).replace("\\\n", " ")  # continued lines are one command
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_deploy_in_the_guide_works_as_shown(tmp_path: Path) -> None:
    url = postgres_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    workers: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    try:
        for line in deploy_block():
            if line.startswith("pip install"):
                continue  # installed already: this is the checkout under test
            if line.startswith("export LEGATO_DATABASE_URL="):
                env["LEGATO_DATABASE_URL"] = url  # the guide's server, a schema of our own
                continue
            args = shlex.split(line.removesuffix("&").strip())
            assert args[0] == "legato", line
            command = [str(LEGATO), *args[1:]]
            if line.endswith("&"):
                with (tmp_path / f"worker-{len(workers)}.log").open("wb") as log:
                    workers.append(
                        subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
                    )
                continue
            if args[1] == "start":  # the workers are up once both are registered
                with legato.Client(url) as client:
                    deadline = time.monotonic() + 30
                    while len(client.list_workers()) < len(workers):
                        assert time.monotonic() < deadline, "the workers did not register"
                        time.sleep(0.1)
            done = subprocess.run(
                command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
            outputs[" ".join(args[1:3])] = done.stdout
        assert re.search(
            r"migrated postgresql://\S+ from schema 0 to \d+: 0006_", outputs["db migrate"]
        )
        with legato.Client(url) as client:
            assert client.result("p-1", timeout=30)["payment_id"]
            assert len(client.list_workers()) == 2
        assert "p-1" in outputs["runs show"]
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=30)
    assert all(proc.returncode == 0 for proc in workers)
