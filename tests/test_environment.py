"""environment.yml and pyproject.toml declare the same dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return {r.replace(" ", "") for r in reqs}


def _environment() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            out |= {d.replace(" ", "") for d in dep["pip"] if not d.startswith("-e")}
        elif dep != "pip" and not dep.startswith("python="):
            out.add(dep.replace(" ", ""))
    return out


def test_environment_yml_and_pyproject_agree():
    py, env = _pyproject(), _environment()
    assert py - env == set(), f"in pyproject.toml but not environment.yml: {sorted(py - env)}"
    assert env - py == set(), f"in environment.yml but not pyproject.toml: {sorted(env - py)}"


def test_the_reproducibility_pins_are_exact():
    py = _pyproject()
    for name in ("sam2", "numpy", "scipy"):
        assert any(r.startswith(f"{name}==") for r in py), f"{name} must be pinned exactly"
    assert any(r.startswith("torch>=") and "<=" in r for r in py), "torch needs a bounded range"
