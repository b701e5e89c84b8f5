"""The README and docs/ against the code: every setting is documented under the name an
operator sets, no page names a setting that does not exist, and the Environment table's
defaults are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from crawler.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The README's example of a misspelt variable, which forecourt warns about.
MISSPELT_EXAMPLES = {"FORECOURT_JOB_MAX_ATTEMPT"}


def env_names(field: str) -> list[str]:
    """The environment variables a setting is read from, the conventional one first."""
    alias = Settings.model_fields[field].validation_alias
    return list(alias.choices) if alias is not None else [f"FORECOURT_{field.upper()}"]


def named(text: str, name: str) -> bool:
    """Whether `text` names the variable whole (FORECOURT_API_PORT is no mention of
    FORECOURT_API_PORTS, nor `_PORT` of FORECOURT_API_PORT)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text) is not None


def test_every_setting_is_named_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [env_names(f)[0] for f in Settings.model_fields
               if not any(named(readme, n) for n in env_names(f))]
    assert not missing, f"settings of crawler/config.py missing from README.md: {missing}"


def test_every_setting_the_docs_name_exists():
    known = {n for f in Settings.model_fields for n in env_names(f)}
    unknown = {(path.name, name) for path in DOCS
               for name in re.findall(r"(?<![A-Z0-9_])FORECOURT_[A-Z0-9_]*[A-Z0-9]",
                                      path.read_text())
               if name not in known | MISSPELT_EXAMPLES}
    assert not unknown, f"documented settings crawler/config.py does not have: {unknown}"


def test_the_docs_name_settings_as_an_operator_sets_them():
    """`job_reap_after_s` is a name in the code; the operator sets FORECOURT_JOB_REAP_AFTER_S."""
    by_field = {(path.name, f) for path in DOCS for f in Settings.model_fields
                if f"`{f}`" in path.read_text()}
    assert not by_field, f"settings named by their field, not their variable: {by_field}"


def _environment_table(readme: str) -> dict[str, str]:
    """The README's Environment table: variable -> its default cell."""
    section = readme.split("## Environment", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_environment_tables_literal_defaults_are_the_codes():
    table = _environment_table((ROOT / "README.md").read_text())
    assert "DATABASE_URL" in table and "FORECOURT_BATCH_SIZE" in table
    wrong = {}
    for field, info in Settings.model_fields.items():
        name = env_names(field)[0]
        literal = re.match(r"`([^`]*)`", table.get(name, ""))
        if literal is None or not isinstance(info.default, (int, float, str)) \
                or isinstance(info.default, bool):
            continue  # not in the table, or a default said in words (a path, "unset")
        default = info.default
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        if literal.group(1) != str(default):
            wrong[name] = (literal.group(1), default)
    assert not wrong, f"README.md's Environment table (documented, code): {wrong}"
