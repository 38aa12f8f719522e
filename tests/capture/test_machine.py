"""Host facts, secret filtering and git detection, against the real system and a real git."""

from __future__ import annotations

import os
import shutil
import subprocess

import orjson
import pytest

from provwh.capture import machine
from provwh.capture.machine import (
    code_repository,
    environment_snapshot,
    machine_info,
    strip_credentials,
)
from provwh.capture.telemetry import gpu_available
from provwh.core.host import host_identity
from provwh.core.redact import is_secret_name, redact, redact_argv, redact_url

SECRET = [
    "PASSWORD",
    "db_password",
    "DB_PASSWD",
    "MYSQL_PASS",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "apiKey",
    "APIKEY",
    "api-key",
    "x.secret.value",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "credential",
    "authToken",
    "SSH_AUTH_SOCK",
    "PRIVATE_KEY",
    "session_id",
    "CookieJar",
    "REQUEST_SIGNATURE",
    "TLS_CERT",
    "SENTRY_DSN",
    "accessKeys",
    "OAuthToken",
]
NOT_SECRET = [
    "PWD",
    "OLDPWD",
    "HOME",
    "PATH",
    "MONKEYPATCH",
    "KEYBOARD_LAYOUT",
    "monkeyBusiness",
    "SLURM_JOB_ID",
    "author",
    "compass",
    "BYPASS_CACHE",
    "tokenizer_name",
    "process",
    "access_count",
    "USER",
    "LANG",
]


@pytest.mark.parametrize("name", SECRET)
def test_secret_names(name):
    assert is_secret_name(name) is True


@pytest.mark.parametrize("name", NOT_SECRET)
def test_non_secret_names(name):
    assert is_secret_name(name) is False


def test_environment_snapshot_keeps_provenance_and_drops_secrets(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("PROVWH_DB_URL", "postgresql://me:hunter2@db.example/prov")
    monkeypatch.setenv("MY_API_TOKEN", "t0k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("DB_PASSWORD", "pw")
    monkeypatch.setenv("SLURM_DB_PASSWORD", "pw")
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    env = environment_snapshot()
    assert env["SLURM_JOB_ID"] == "42"
    assert env["OMP_NUM_THREADS"] == "8"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["PROVWH_DB_URL"] == "postgresql://me:REDACTED@db.example/prov"
    for name in ("MY_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "SLURM_DB_PASSWORD"):
        assert name not in env
    assert "UNRELATED_VARIABLE" not in env
    assert "hunter2" not in orjson.dumps(env).decode()


def test_redact_nested():
    original = {
        "databases": {
            "postgres": {"url": "postgresql://alice:pw@host:5432/db", "password": "pw"},
            "tokens": ["a", "b"],
        },
        "api_key": None,
        "items": [{"session": 1}, "https://bob:x@example.com/path", "plain"],
        "count": 3,
    }
    out = redact(original)
    assert out == {
        "databases": {
            "postgres": {"url": "postgresql://alice:REDACTED@host:5432/db", "password": "REDACTED"},
            "tokens": "REDACTED",
        },
        "api_key": None,
        "items": [{"session": "REDACTED"}, "https://bob:REDACTED@example.com/path", "plain"],
        "count": 3,
    }
    assert original["databases"]["postgres"]["password"] == "pw"  # a copy, not in place
    out["items"][0]["x"] = 1
    assert original["items"][0] == {"session": 1}


def test_redact_url():
    assert redact_url("https://u:p@h/x") == "https://u:REDACTED@h/x"
    assert redact_url("https://u:p@ss@h/x") == "https://u:REDACTED@h/x"
    assert redact_url("https://h:8080/x?a=b@c") == "https://h:8080/x?a=b@c"
    assert (
        redact_url("see redis://:pw@cache:6379/0 now") == "see redis://:REDACTED@cache:6379/0 now"
    )
    assert redact_url("no url here") == "no url here"


def test_redact_argv():
    argv = [
        "train.py",
        "--password=x",
        "--token",
        "abc",
        "--epochs",
        "3",
        "--db",
        "postgresql://u:pw@h/db",
        "--api-key",
        "--verbose",
        "API_KEY=k",
        "--lr=0.1",
    ]
    assert redact_argv(argv) == [
        "train.py",
        "--password=REDACTED",
        "--token",
        "REDACTED",
        "--epochs",
        "3",
        "--db",
        "postgresql://u:REDACTED@h/db",
        "--api-key",
        "--verbose",
        "API_KEY=REDACTED",
        "--lr=0.1",
    ]


def test_strip_credentials():
    assert strip_credentials("https://u:secret@example.com/x.git") == "https://example.com/x.git"
    assert strip_credentials("https://ghp_tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert strip_credentials("ssh://git@host/o/r.git") == "ssh://git@host/o/r.git"
    assert strip_credentials("ssh://git:pw@host/o/r.git") == "ssh://host/o/r.git"
    assert strip_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert strip_credentials("/srv/repos/r.git") == "/srv/repos/r.git"


def test_host_identity():
    ident = host_identity()
    assert set(ident) == {
        "user",
        "login_name",
        "sys_name",
        "node_name",
        "hostname",
        "private_ip",
        "public_ip",
    }
    assert ident["public_ip"] is None
    assert ident["sys_name"] == os.uname()[0]
    assert ident["node_name"] == os.uname()[1]
    assert isinstance(ident["hostname"], str) and ident["hostname"]
    if ident["private_ip"] is not None:
        assert not ident["private_ip"].startswith("127.")
        assert ident["private_ip"].count(".") == 3
    ident["user"] = "changed"
    assert host_identity()["user"] != "changed"  # the cached value is not shared


def test_machine_info_is_json_ready():
    machine._machine_info.cache_clear()  # other tests may have filled it in another environment
    info = machine_info()
    assert orjson.loads(orjson.dumps(info)) == info
    assert {"platform", "cpu", "memory", "disk", "process", "environment"} <= set(info)
    assert info["cpu"]["logical"] >= 1
    assert info["memory"]["total"] > 0
    assert info["process"]["pid"] == os.getpid()
    assert info["environment"] == environment_snapshot()
    assert ("gpu" in info) is gpu_available()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "trunk")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "config", "user.name", "Test")
    (root / "data.txt").write_text("one\n")
    (root / "sub").mkdir()
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_code_repository(repo):
    machine._code_repository.cache_clear()
    sha = _git(repo, "rev-parse", "HEAD")
    info = code_repository(str(repo))
    assert info == {
        "commit": sha,
        "branch": "trunk",
        "remote": None,
        "dirty": False,
        "root": str(repo.resolve()),
    }

    machine._code_repository.cache_clear()
    _git(repo, "remote", "add", "origin", "https://u:secret@example.com/x.git")
    (repo / "data.txt").write_text("two\n")
    (repo / "sub" / "untracked.txt").write_text("new\n")
    info = code_repository(str(repo / "sub"))
    assert info["commit"] == sha
    assert info["dirty"] is True
    assert info["remote"] == "https://example.com/x.git"
    assert info["root"] == str(repo.resolve())


@needs_git
def test_code_repository_untracked_only_is_clean_and_detached_head(repo):
    machine._code_repository.cache_clear()
    (repo / "new.txt").write_text("x\n")
    _git(repo, "checkout", "-q", "--detach")
    info = code_repository(str(repo))
    assert info["dirty"] is False
    assert info["branch"] is None
    assert info["commit"] == _git(repo, "rev-parse", "HEAD")


@needs_git
def test_code_repository_is_cached_per_path(repo):
    machine._code_repository.cache_clear()
    first = code_repository(str(repo))
    (repo / "data.txt").write_text("changed\n")
    assert code_repository(str(repo)) == first  # computed once per path


def test_code_repository_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert code_repository(str(tmp_path)) is None
    assert code_repository(str(tmp_path / "missing")) is None
