"""docs/flags.md is the ``--help`` of the entry points, rendered: it must not drift.

A flag added, renamed, or given a new default in ``prompting/config.py`` without
re-running ``scripts/gen_flags_doc.py`` fails here, naming the command that fixes it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompting.config import build_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_flags_doc  # noqa: E402


def test_the_page_is_what_the_script_renders_now():
    assert gen_flags_doc.PAGE.read_text() == gen_flags_doc.render(), (
        "docs/flags.md is stale: run python scripts/gen_flags_doc.py"
    )


@pytest.mark.parametrize("role", ["validator", "miner"])
def test_every_flag_help_prints_is_on_the_page(role: str):
    """The page against the text ``--help`` prints, not only against the script."""
    page = gen_flags_doc.PAGE.read_text()
    printed = set(re.findall(r"--[a-z][a-z_.-]*[a-z_]", build_parser(role).format_help()))
    printed.discard("--help")
    assert printed, "no flag found in --help"
    missing = sorted(f for f in printed if f"`{f}`" not in page)
    assert not missing, missing


def test_a_changed_flag_makes_the_page_stale(monkeypatch):
    """The check can fail: a new default shows up in the rendered page."""
    from prompting import config

    before = gen_flags_doc.render()
    original = config._add_common

    def with_other_netuid(parser):
        original(parser)
        parser.set_defaults(netuid=7)

    roles = {role: tuple(with_other_netuid if a is original else a for a in adders)
             for role, adders in config.ROLES.items()}  # fmt: skip
    monkeypatch.setattr(config, "ROLES", roles)
    monkeypatch.setattr(gen_flags_doc, "ROLES", roles)
    after = gen_flags_doc.render()
    assert before != after and "| `--netuid` | `7` |" in after


def test_check_mode_exit_code():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_flags_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
