"""The queue-level CLI commands with redis URLs (the CLI itself is unchanged:
every command goes through unimq.open / unimq.system.check)."""

from __future__ import annotations

from click.testing import CliRunner

from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer, free_port
from unimq.cli._app import cli


def test_queue_commands_over_redis(valkey: ValkeyServer) -> None:
    runner = CliRunner()
    url = f"{valkey.url}/{new_name()}"

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result.output

    assert "reachable" in run("check", url) and "can be created" in run("check", url)
    run("create", url, "--max-messages", "5")
    run("send", url, "low")
    run("send", url, "high", "--priority", "3")
    run("send", url, "typed", "--mtype", "4")
    assert "max_messages" in run("stat", url)
    assert run("recv", url, "--count", "1", "--timeout", "1").strip() == "high"
    assert run("recv", url, "--mtype", "4", "--timeout", "1").strip() == "typed"
    assert "purged 1" in run("purge", url)
    assert "removed" in run("rm", url, "--yes")


def test_check_says_when_the_server_is_unreachable() -> None:
    result = CliRunner().invoke(cli, ["check", f"redis://127.0.0.1:{free_port()}/q"])
    assert result.exit_code != 0
    assert "cannot reach the redis server" in result.output


def test_password_not_in_cli_output(valkey: ValkeyServer) -> None:
    # The session server's default user takes any password ("nopass"), so the
    # command succeeds and prints the queue's URL: without the password.
    name = new_name()
    url = f"redis://default:topsecret@127.0.0.1:{valkey.port}/{name}"
    runner = CliRunner()
    for args in (["create", url], ["send", url, "x"], ["stat", url], ["rm", url, "--yes"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "topsecret" not in result.output
    assert f"redis://default@127.0.0.1:{valkey.port}/{name}" in result.output
