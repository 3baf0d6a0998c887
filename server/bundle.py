"""`segment-audiences bundle --output FILE.mcpb`: the MCP Bundle a host (Claude Desktop, say) installs.

The bundle holds this checkout's source and, in `server/lib`, its dependencies installed for the
Python that runs this command (`pip install --target`), so it needs nothing on the host but a
`python3` of that version on the same platform; the manifest's `compatibility` says which. It is
packed by Anthropic's `mcpb pack`, which validates the manifest first: the `mcpb` named by
SEGMENT_AUDIENCES_MCPB, else `mcpb` on the PATH, else `npx --yes @anthropic-ai/mcpb@MCPB_VERSION`.
The manifest's `python` server type is used, not `uv`: a `uv` bundle needs uv on the host.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "tools", "store", "backend")
FILES = ("manifest.json", "README.md", "pyproject.toml")
MCPB_VERSION = "2.1.2"
VENDORED = Path("server") / "lib"


class BundleError(Exception):
    """Why a bundle could not be built, in words a person can act on."""


def build(output: Path, checkout: Path = CHECKOUT) -> Path:
    """Stage the source and its vendored dependencies, and pack them into `output`."""
    if not (checkout / "pyproject.toml").exists() or not (checkout / "manifest.json").exists():
        raise BundleError(f"{checkout} is not a segment-audiences checkout (no pyproject.toml and manifest.json); "
                          "run the command in one")
    output = output.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / "segment-audiences"
        for package in PACKAGES:
            shutil.copytree(checkout / package, staging / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "lib"))
        for name in FILES:
            shutil.copy2(checkout / name, staging / name)
        _vendor(checkout, staging / VENDORED)
        manifest = json.loads((staging / "manifest.json").read_text())
        manifest["compatibility"] = compatibility()
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        output.parent.mkdir(parents=True, exist_ok=True)
        _run([*mcpb_command(), "pack", str(staging), str(output)], "mcpb pack")
    return output


def compatibility() -> dict:
    """What the vendored dependencies were built for: this platform and this Python's minor version."""
    major, minor = sys.version_info[:2]
    return {"platforms": [{"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, sys.platform)],
            "runtimes": {"python": f">={major}.{minor},<{major}.{minor + 1}"}}


def mcpb_command() -> list[str]:
    named = os.environ.get("SEGMENT_AUDIENCES_MCPB")
    if named:
        return [named]
    found = shutil.which("mcpb")
    if found:
        return [found]
    npx = shutil.which("npx")
    if npx is None:
        raise BundleError("mcpb is needed to pack the bundle: install Node.js (for npx), or set "
                          "SEGMENT_AUDIENCES_MCPB to an mcpb executable")
    return [npx, "--yes", f"@anthropic-ai/mcpb@{MCPB_VERSION}"]


def _vendor(checkout: Path, target: Path) -> None:
    dependencies = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["dependencies"]
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
          "--target", str(target), *dependencies], f"pip install (for Python {platform.python_version()})")


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
