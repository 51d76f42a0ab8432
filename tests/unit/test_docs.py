"""The docs cannot drift from the code they describe: the flag table of
docs/serving.md holds every flag of ``python -m server --help`` and no other, and
every measurement table in the docs names the commit it measured."""

import re

from helpers import ROOT

from server.settings import build_parser

COMMIT = re.compile(r"\bat [0-9a-f]{7}\b", re.IGNORECASE)


def test_the_flag_table_is_the_servers_flags():
    flags = {option for action in build_parser()._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    rows = [line for line in (ROOT / "docs" / "serving.md").read_text().splitlines() if line.startswith("| `--")]
    documented = {flag for row in rows for flag in re.findall(r"`(--[a-z0-9-]+)`", row.split("|")[1])}
    assert not flags - documented, f"flags missing from docs/serving.md's table: {sorted(flags - documented)}"
    assert not documented - flags, f"flags in docs/serving.md's table that the server lacks: {sorted(documented - flags)}"


def test_help_describes_every_door_and_prints_no_empty_defaults():
    text = build_parser().format_help()
    assert "HTTP" in text and "playground" in text and "Open Inference Protocol" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert all(action.help for action in build_parser()._actions)


def test_every_measurement_table_names_its_commit():
    """A table whose numbers were measured (a header of figures such as req/s, ms, MiB,
    images/s or x something) has "at <commit>" in the paragraph just above or below it."""
    measured = re.compile(r"req(uests)?/s|images/s|\bms\b|MiB|\bx (echo|onnxruntime|before)|p50|p99")
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")) and measured.search(line):
                end = next((j for j in range(i, len(lines)) if not lines[j].startswith("|")), len(lines))
                around = "\n".join(lines[max(0, i - 12):i] + lines[end:end + 4])
                assert COMMIT.search(around), f"{page.name}:{i + 1}: a table of measurements without its commit"
