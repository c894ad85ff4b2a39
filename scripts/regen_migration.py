"""Regenerates the single initial migration from the models (pre-1.0 only: no deployed databases yet).

Released: do not run this any more; add a revision in migrations/versions instead.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command

from app.core.migrate import MIGRATIONS_DIR, alembic_config


def main() -> None:
    if (MIGRATIONS_DIR / "versions" / "0002_sessions.py").exists():
        sys.exit("the schema is released: add a revision in migrations/versions instead of regenerating 0001")
    for old in (MIGRATIONS_DIR / "versions").glob("*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        config = alembic_config(f"sqlite:///{Path(tmp) / 'empty.db'}")
        command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "check", "--fix", "-q", str(MIGRATIONS_DIR / "versions")], check=False)
    subprocess.run([*ruff, "format", "-q", str(MIGRATIONS_DIR / "versions")], check=False)
    print("wrote", *sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")))


if __name__ == "__main__":
    main()
