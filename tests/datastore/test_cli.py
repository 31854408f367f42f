"""The official CLI's data commands against Algostore: algo ls, mkdir, cp, cat, rm, rmdir."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datastore.models import Collection, DataFile

pytestmark = pytest.mark.django_db(transaction=True)
ALGO = str(Path(sys.executable).parent / "algo")


def test_the_algo_cli_manages_data(live_server, raw_key, user, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "ALGORITHMIA_API": live_server.url,
           "ALGORITHMIA_API_KEY": raw_key}

    def algo(*args: str) -> str:
        done = subprocess.run([ALGO, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    algo("mkdir", "data://.my/cli")
    assert Collection.objects.filter(owner_name=user.username, name="cli").exists()
    (tmp_path / "hello.txt").write_text("hello from the cli")
    algo("cp", "hello.txt", "data://.my/cli/hello.txt")
    assert DataFile.objects.get(name="hello.txt").size == len("hello from the cli")
    assert algo("ls", "data://.my/cli/").split() == [".my/cli/hello.txt"]
    assert algo("ls", f"data://{user.username}/").split() == [f"{user.username}/cli/"]
    assert algo("ls").split() == ["cli/"]  # data:// alone: the caller's own collections
    assert algo("cat", "data://.my/cli/hello.txt").strip() == "hello from the cli"
    algo("cp", "data://.my/cli/hello.txt", "copy.txt")
    assert (tmp_path / "copy.txt").read_text() == "hello from the cli"
    algo("rm", "data://.my/cli/hello.txt")
    assert not DataFile.objects.exists()
    algo("rmdir", "data://.my/cli")
    assert not Collection.objects.exists()
