"""How a job is isolated on this machine: the choice, the command around it, its environment.

Pure functions; the runner carries them out. Three levels, best first:

    bwrap  bubblewrap namespaces: its own PID, IPC, UTS and mount namespaces, a fresh /proc
           and /dev, a private /tmp, system dirs and the Python it needs read-only, only its
           run's work dir writable; no ow home, no other work dir, no other process in view.
           Ending the namespace's first process ends every process the job left (`setsid`
           daemons too). No capabilities (as root: uid 0 that cannot override a permission,
           with /etc's secrets masked). Network stays: jobs talk to NATS.
    user   no bubblewrap, ow runs as root: the job runs as `nobody`, its work dir its own.
           It sees the file system as that user does, and other processes.
    none   neither: the job runs as ow's own user, as before (said plainly in the log).

`OW_SANDBOX` (auto | bwrap | user | off) chooses; auto takes the best level available.
The job's environment is an allow-list (`job_env`): the agent's own is never inherited
wholesale (its OW_HOME, tokens and keys stay with it).

Imports: stdlib and `ow.core.errors` only.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ow.core.errors import ConfigError
from ow.core.models import ALIASES_ENV, alias_targets

__all__ = ["MODES", "NOBODY", "bwrap_argv", "choose", "describe", "job_env", "read_only_paths",
           "shared_model_dir", "user_argv"]

MODES = ("auto", "bwrap", "user", "off")
NOBODY = 65534  # uid and gid of `nobody`/`nogroup` on Debian
BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
#: system directories a job sees read-only (a symlink, as /bin -> usr/bin, stays a symlink)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
#: what of /etc a job never reads: password hashes, host and TLS keys
MASKED = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh",
          "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d")

#: variables a job inherits from the agent, by exact name or by prefix (`NVIDIA_*`)
_ALLOWED = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONPATH", "PYTHONHASHSEED",
            "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE",
            "VIRTUAL_ENV", "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE",
            "HF_DATASETS_OFFLINE", "TRANSFORMERS_CACHE", "TRANSFORMERS_OFFLINE",
            "SENTENCE_TRANSFORMERS_HOME", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR",
            "TRITON_CACHE_DIR", "XDG_CACHE_HOME", "CUDA_VISIBLE_DEVICES", "CUDA_HOME",
            "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", ALIASES_ENV}
_ALLOWED_PREFIXES = ("LC_", "NVIDIA_", "VLLM_")
#: of those, the ones naming directories a sandboxed job needs to read
_PATH_VARS = ("PYTHONPATH", "VIRTUAL_ENV", "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE",
              "TRANSFORMERS_CACHE", "SENTENCE_TRANSFORMERS_HOME", "TORCH_HOME", "CUDA_HOME",
              "LD_LIBRARY_PATH")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def choose(mode: str, *, has_bwrap: bool, has_setpriv: bool, euid: int) -> str:
    """The isolation a job gets: 'bwrap', 'user' or 'none' (`mode` is OW_SANDBOX)."""
    if mode not in MODES:
        raise ConfigError(f"bad OW_SANDBOX {mode!r}: use one of {', '.join(MODES)}")
    can_user = euid == 0 and has_setpriv
    if mode == "bwrap" and not has_bwrap:
        raise ConfigError(f"OW_SANDBOX=bwrap but {BWRAP} is missing: install bubblewrap "
                          "(apt-get install bubblewrap) or set OW_SANDBOX=auto")
    if mode == "user" and not can_user:
        raise ConfigError("OW_SANDBOX=user needs ow to run as root (and util-linux's setpriv) "
                          "to start jobs as `nobody`: run as root or set OW_SANDBOX=auto")
    if mode == "off":
        return "none"
    if mode in ("auto", "bwrap") and has_bwrap:
        return "bwrap"
    return "user" if can_user else "none"


def describe(isolation: str) -> str:
    """The run log's first line: which isolation this job got, in plain words."""
    text = {
        "bwrap": "bubblewrap sandbox without capabilities: own PID/IPC/UTS/mount namespaces, "
                 "only the work dir writable, no view of the ow home, other work dirs or "
                 "processes",
        "user": "separate user (nobody), no sandbox: the job sees the file system as nobody "
                "does, and other processes",
        "none": "NO isolation: the job runs as the agent's own user and sees what it sees",
    }[isolation]
    return f"[ow] isolation: {isolation} ({text})\n"


def job_env(
    base: Mapping[str, str], *, workdir: Path, python_bin: str, run: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The job's environment: the allow-listed part of the agent's, HOME = its work dir, the
    org's secrets, then the run's OW_* (last: a secret named like them cannot override)."""
    env = {k: v for k, v in base.items()
           if k in _ALLOWED or k.startswith(_ALLOWED_PREFIXES)}
    env.update({k: v for k, v in (secrets or {}).items() if _NAME.match(k)})
    env["PATH"] = os.pathsep.join(
        p for p in (python_bin, env.get("PATH") or "/usr/local/bin:/usr/bin:/bin") if p)
    env.update(HOME=str(workdir), TMPDIR="/tmp", PYTHONUNBUFFERED="1")
    env.update(run)
    return env


def read_only_paths(
    env: Mapping[str, str], python_dirs: Iterable[str], hidden: Iterable[str] = (),
) -> list[str]:
    """Directories outside the system dirs a sandboxed job must read: its Python and venv,
    PYTHONPATH entries, model caches and OW_MODEL_ALIASES targets (only the existing ones,
    each once, no system dir, and none that holds a `hidden` path: the ow home, the agent's
    work dirs)."""
    found: list[str] = []
    secret = [os.path.realpath(h) for h in hidden]
    candidates = list(python_dirs)
    for var in _PATH_VARS:
        candidates += [p for p in env.get(var, "").split(os.pathsep) if p]
    with contextlib.suppress(ConfigError):  # malformed: the payload reports it in its log
        candidates += alias_targets(env)
    for raw in candidates:
        path = os.path.realpath(raw)
        if path in ("/", "") or any(_within(path, d) for d in SYSTEM_DIRS):
            continue
        if any(_within(h, path) or _within(path, h) for h in secret):
            continue
        if os.path.isdir(path) and path not in found:
            found.append(path)
    return found


def shared_model_dir(model: str, *, open_server: bool) -> list[str]:
    """The job's `model` when it names a local directory, to bind read-only, or nothing.

    Only on an `open_server` (no auth: `ow up` without orgs, where whoever submits is this
    machine's operator, as in the cookbook's local-model quickstart). With orgs, a remote
    submitter never chooses what of this machine its job sees: OW_SANDBOX_RO, the
    operator's list, is the way to share a model dir then."""
    if not open_server or not model.startswith("/") or not os.path.isdir(model):
        return []
    return [os.path.realpath(model)]


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def bwrap_argv(
    command: list[str], *, workdir: Path, read_only: Iterable[str],
    symlinks: Mapping[str, str],
) -> list[str]:
    """`command` inside a bubblewrap sandbox whose only writable place is `workdir`.

    `symlinks` maps each existing system dir that is a symlink (/bin -> usr/bin) to its
    target; the others are bound read-only. The job keeps ow's uid but no capability at all
    (as root: it reads root's own files in what is bound, such as a model written 0600, but
    /etc's secrets are masked, and it sees nothing else of the machine).
    """
    argv = [BWRAP, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--hostname", "ow-job", "--cap-drop", "ALL"]
    for d in SYSTEM_DIRS:
        if d in symlinks:
            argv += ["--symlink", symlinks[d], d]
        else:
            argv += ["--ro-bind-try", d, d]
    for secret in MASKED:  # readable by root's uid even without capabilities
        if os.path.isdir(secret):
            argv += ["--tmpfs", secret]
        elif os.path.exists(secret):
            argv += ["--ro-bind", "/dev/null", secret]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    read_only = list(read_only)
    # the empty dirs leading to each bind are traversable (bwrap would copy /root's 0700)
    made: list[str] = []
    for path in [*read_only, str(workdir)]:
        for parent in reversed(Path(path).parents[:-1]):
            p = str(parent)
            if p not in made and not any(_within(p, d) for d in (*SYSTEM_DIRS, *read_only)):
                made.append(p)
                argv += ["--perms", "0755", "--dir", p]
    for path in read_only:
        argv += ["--ro-bind", path, path]
    return [*argv, "--bind", str(workdir), str(workdir), "--chdir", str(workdir), "--",
            *command]


def user_argv(command: list[str]) -> list[str]:
    """`command` run as `nobody` (from root), with no supplementary groups."""
    return [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--", *command]
