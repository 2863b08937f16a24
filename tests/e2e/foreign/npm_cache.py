"""npm folders the end-to-end tests make once and keep in the user's cache.

The ``@a2a-js/sdk`` peers and clients (``tests/e2e/js/``) run with Node.js
against packages npm installs into a :class:`CachedNpm` folder,
``~/.cache/agent-node-tests/<name>`` (``$XDG_CACHE_HOME`` when set), outside
the repository: made the first time under a file lock (so parallel sessions
make it once), checked and reused afterwards; the test skips, saying why,
when Node.js or npm is missing or npm cannot install.

How the scripts find those packages: Node.js resolves an ES module's bare
imports (``import … from "@a2a-js/sdk/server"``) from the ``node_modules``
folders above *the importing file*; ``NODE_PATH`` is ignored for ES modules.
So the folder holds a symbolic link to ``tests/e2e/js`` (one per checkout,
named after a digest of its path) and the scripts are run through that link
with ``--preserve-symlinks --preserve-symlinks-main``: Node.js then keeps the
link's path as the module's location, and ``@a2a-js/sdk`` resolves to the
folder's ``node_modules``. Nothing is copied, so an edited script runs at
once, and nothing is installed in the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.venvs import CACHE

#: The scripts: peer servers and client drivers, plain ES modules.
JS_DIR = Path(__file__).resolve().parents[1] / "js"
#: Options that make Node.js resolve imports from the link's folder (see above).
NODE_FLAGS = ("--preserve-symlinks", "--preserve-symlinks-main")


@dataclass(frozen=True)
class CachedNpm:
    """A folder ``CACHE/name`` where npm installed ``dependencies`` (name,
    exact version); ``check`` is an ES module body that must run there without
    error; ``purpose`` names it in messages ("@a2a-js/sdk 1.3.0")."""

    name: str
    dependencies: tuple[tuple[str, str], ...]
    check: str
    purpose: str

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def stamp(self) -> Path:
        """Written once npm has installed the dependencies (the check still runs)."""
        return self.path / "agent-node-dependencies.json"

    def manifest(self) -> str:
        return json.dumps(dict(self.dependencies), indent=2, sort_keys=True) + "\n"

    def ready(self) -> bool:
        """Whether npm has installed these dependencies already (for timeouts:
        the first run on a machine takes npm's time)."""
        return self.stamp.is_file() and self.stamp.read_text() == self.manifest()

    def script(self, name: str) -> list[str]:
        """The command running ``tests/e2e/js/<name>`` with this folder's packages,
        the folder made first if need be (skips the test when it cannot be)."""
        node = shutil.which("node")
        if node is None:
            pytest.skip(f"{self.purpose} needs Node.js, and no `node` is on PATH")
        self.folder()
        return [node, *NODE_FLAGS, str(self._scripts() / name)]

    def folder(self) -> Path:
        """The folder, made (under a lock) if missing or broken."""
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / f"{self.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            broken = self._broken() if self.ready() else "not made yet"
            if broken is not None:
                self._create()
                broken = self._broken()
            assert broken is None, f"the {self.purpose} folder at {self.path} is broken: {broken}"
            self._link_scripts()
        return self.path

    def _scripts(self) -> Path:
        digest = hashlib.sha256(str(JS_DIR).encode()).hexdigest()[:12]
        return self.path / f"scripts-{digest}"

    def _link_scripts(self) -> None:
        link = self._scripts()
        if link.is_symlink() and link.readlink() == JS_DIR:
            return
        fresh = link.with_name(link.name + ".new")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(JS_DIR, target_is_directory=True)
        fresh.replace(link)

    def _broken(self) -> str | None:
        """None when the folder runs the check; else why not."""
        node = shutil.which("node")
        if node is None:
            return "no `node` on PATH"
        check = [node, "--input-type=module", "--eval", self.check]
        done = subprocess.run(check, cwd=self.path, capture_output=True, text=True, timeout=60)
        return None if done.returncode == 0 else done.stderr

    def _create(self) -> None:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"cannot install {self.purpose}: no `npm` on PATH")
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        package = {"name": self.name, "private": True, "dependencies": dict(self.dependencies)}
        (self.path / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        install = [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--loglevel=error"]
        env = {**os.environ, "npm_config_update_notifier": "false"}
        done = subprocess.run(
            install, cwd=self.path, capture_output=True, text=True, timeout=300, env=env
        )
        if done.returncode != 0:
            shutil.rmtree(self.path, ignore_errors=True)
            output = (done.stdout + done.stderr).strip().splitlines()[-8:]
            pytest.skip(
                f"cannot install {self.purpose} with npm (no registry?): " + " | ".join(output)
            )
        self.stamp.write_text(self.manifest())
