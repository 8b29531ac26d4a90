"""Finding 7 of issue 15: an org token used with another org's name returned `[]` instead
of an error; the ow home was 0755 and its projections and logs 0644 (any local user could
read every org's projection)."""

from __future__ import annotations

import stat

import pytest

from ow import AsyncOpenWeights
from ow.core import bus as bus_mod
from ow.core import tenancy as tn
from ow.core.config import home_dir, private_home

pytestmark = pytest.mark.anyio


async def test_a_token_used_with_another_orgs_name_says_whose_it_is(tenants):
    t = tenants
    for scope in ("read", "submit", "admin"):
        token = t.tokens[("orga", scope)]
        with pytest.raises(tn.TokenError, match="belongs to org 'orga', not 'orgb'"):
            await bus_mod.connect(t.url, org="orgb", token=token)
        async with AsyncOpenWeights(url=t.url, org="orgb", token=token, env={}) as ow:
            with pytest.raises(tn.TokenError, match="--org orga"):
                await ow.jobs.list()
    async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "read")],
                                env={}) as ow:
        assert await ow.jobs.list() == []  # its own org: fine


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_home_is_its_owners_only(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OW_HOME", str(home))
    assert home_dir() == home
    assert _mode(home) == 0o700
    home.chmod(0o755)  # a home made by an older ow
    (home / "projections").mkdir(mode=0o755)
    (home / "projections" / "orga.duckdb").write_bytes(b"x")
    (home / "projections" / "orga.duckdb").chmod(0o644)
    (home / "logs").mkdir(mode=0o755)
    (home / "logs" / "agent.log").write_text("x")
    (home / "up.json").write_text("{}")
    private_home(home)
    assert _mode(home) == 0o700
    for path in home.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    with tn.update(home):  # what `ow org` / `ow token` / `ow up` go through
        pass
    assert _mode(tn.state_path(home)) == 0o600
