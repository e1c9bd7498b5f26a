"""Write into the README what `make demo` prints, from a real run (tests/cli/test_cli.py,
test_the_readme_shows_what_the_demo_prints, checks that they agree).

    .venv/bin/python scripts/readme_demo.py

The demo runs on a fresh SQLite database in a temporary directory, for the day the README names
(`<!-- demo output: campaigns demo --as-of DAY -->`): other days differ a little (weekends, holidays).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- demo output: campaigns demo --as-of (\d{4}-\d{2}-\d{2}) -->\n```\n(.*?)```\n", re.S)
FIRST = "daily campaign as of "  # the block starts at the summary table (the lines before name local files)


def readme_block(text: str) -> tuple[str, str]:
    """The README's (day, demo output block)."""
    match = MARKER.search(text)
    if match is None:
        raise SystemExit("README.md has no '<!-- demo output: campaigns demo --as-of DAY -->' block")
    return match.group(1), match.group(2)


def shown_part(output: str) -> str:
    """What the README shows of the demo's output: from the summary table to the end."""
    start = output.index(FIRST)
    return output[start:].rstrip("\n") + "\n"


def main() -> None:
    text = README.read_text(encoding="utf-8")
    day, _ = readme_block(text)
    with tempfile.TemporaryDirectory() as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "PREFECT_"))}
        env.update(CAMPAIGNS_DATA_DIR=f"{work}/var", CAMPAIGNS_DATABASE_URL=f"sqlite:///{work}/var/campaigns.db",
                   PREFECT_HOME=f"{work}/prefect", PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "campaigns"), "demo", "--as-of", day], cwd=work,
                              env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
    block = shown_part(done.stdout)
    README.write_text(MARKER.sub(lambda m: f"<!-- demo output: campaigns demo --as-of {day} -->\n```\n{block}```\n",
                                 text, count=1), encoding="utf-8")
    print(f"README.md: the demo's output for {day}, {len(block.splitlines())} lines")


if __name__ == "__main__":
    main()
