"""The sandbox's decisions as pure functions: which isolation, what environment, what binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ow.agent import sandbox
from ow.core.errors import ConfigError


@pytest.mark.parametrize(
    ("mode", "bwrap", "setpriv", "euid", "got"),
    [("auto", True, True, 0, "bwrap"), ("auto", False, True, 0, "user"),
     ("auto", False, True, 1000, "none"), ("auto", False, False, 0, "none"),
     ("bwrap", True, True, 1000, "bwrap"), ("user", True, True, 0, "user"),
     ("off", True, True, 0, "none")],
)
def test_the_isolation_a_job_gets(mode, bwrap, setpriv, euid, got):
    assert sandbox.choose(mode, has_bwrap=bwrap, has_setpriv=setpriv, euid=euid) == got


@pytest.mark.parametrize(("mode", "bwrap", "euid", "match"),
                         [("bwrap", False, 0, "install bubblewrap"),
                          ("user", True, 1000, "run as root"), ("nope", True, 0, "one of")])
def test_an_isolation_that_cannot_be_had_is_a_config_error(mode, bwrap, euid, match):
    with pytest.raises(ConfigError, match=match):
        sandbox.choose(mode, has_bwrap=bwrap, has_setpriv=True, euid=euid)


def test_the_environment_is_an_allow_list():
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "HF_HOME": "/hf",
            "NVIDIA_VISIBLE_DEVICES": "all", "CUDA_VISIBLE_DEVICES": "0", "PYTHONPATH": "/p",
            "OW_HOME": "/root/.ow", "OW_TOKEN": "ow_admin", "OW_SECRET_KEY": "k",
            "AWS_SECRET_ACCESS_KEY": "aws", "SSH_AUTH_SOCK": "/s", "HOME": "/root"}
    env = sandbox.job_env(base, workdir=Path("/w/run"), python_bin="/venv/bin",
                          run={"OW_RUN_ID": "r", "OW_TOKEN": "ow_job"},
                          secrets={"MYSECRET": "v", "bad name": "x"})
    assert env["HOME"] == "/w/run"
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["OW_TOKEN"] == "ow_job"  # the run's, never the agent's
    for gone in ("OW_HOME", "OW_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK",
                 "bad name"):
        assert gone not in env
    for kept in ("LANG", "LC_ALL", "HF_HOME", "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES",
                 "PYTHONPATH", "MYSECRET", "OW_RUN_ID"):
        assert kept in env


def test_no_bind_shows_the_home_or_the_work_dirs(tmp_path):
    home, work, models = tmp_path / "home", tmp_path / "work", tmp_path / "models"
    for d in (home / "nats", work / "run-1", models):
        d.mkdir(parents=True)
    env = {"PYTHONPATH": f"{tmp_path}:{home / 'nats'}:{models}", "HF_HOME": str(home)}
    got = sandbox.read_only_paths(env, ["/usr/lib/python3", str(work / "run-1")],
                                  hidden=[str(home), str(work)])
    assert got == [str(models)]  # not tmp_path (holds both), not what is inside them


def test_the_bwrap_command_binds_only_the_run_dir_writable(tmp_path):
    argv = sandbox.bwrap_argv(["bash", "-c", "true"], workdir=tmp_path / "run",
                              read_only=["/opt/models"], symlinks={"/bin": "usr/bin"})
    assert argv[0] == sandbox.BWRAP
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [str(tmp_path / "run")]
    assert argv[-3:] == ["bash", "-c", "true"]
    assert "/proc" in argv[argv.index("--proc"):]


def test_model_aliases_reach_the_job_and_their_dirs_are_readable(tmp_path):
    model = tmp_path / "tiny"
    model.mkdir()
    env = {"OW_MODEL_ALIASES": f"unsloth/Qwen3-4B={model},x/y={tmp_path / 'missing'}",
           "OW_TOKEN": "never-passed"}
    job = sandbox.job_env(env, workdir=tmp_path / "run", python_bin="/venv/bin", run={})
    assert job["OW_MODEL_ALIASES"] == env["OW_MODEL_ALIASES"]
    assert "OW_TOKEN" not in job
    assert sandbox.read_only_paths(env, []) == [str(model)]  # existing dirs only
    assert sandbox.read_only_paths({"OW_MODEL_ALIASES": "malformed"}, []) == []
