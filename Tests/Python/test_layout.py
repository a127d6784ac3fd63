"""The repository's top level is the one the product's outline names, and no
two paths differ only by case (one path on a case-insensitive file system)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_LEVEL = {"Package.swift", "Sources", "Tests", "Docker", "docs", "Makefile", "README.md", ".ci"}


def tracked_files():
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_top_level_is_the_outlines():
    top = {p.split("/")[0] for p in tracked_files()}
    dot_files = {t for t in top if t.startswith(".") and t != ".ci"}
    assert top - dot_files == TOP_LEVEL


def test_no_two_paths_differ_only_by_case():
    seen = {}
    for path in tracked_files():
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            other = seen.setdefault(prefix.lower(), prefix)
            assert other == prefix, f"{other} and {prefix}"
