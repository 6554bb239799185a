"""models.files: the one atomic writer leaves whole files with the permissions any file the user writes would get."""
from __future__ import annotations

import os
import stat

from models.files import write_json_atomic, write_text_atomic


def test_a_written_file_is_whole_and_readable_by_others_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "sub" / "report.md", "hello\n")
        assert path.read_text() == "hello\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        private = write_json_atomic(tmp_path / "private.json", {"a": float("nan")})
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert private.read_text().strip().startswith("{") and "null" in private.read_text()
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.rglob(".*.tmp")] == []  # no temporary file left behind
