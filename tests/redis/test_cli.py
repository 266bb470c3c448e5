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


def _outputs(valkey: ValkeyServer, commands: list[list[str]]) -> tuple[str, str]:
    # The session server's default user takes any password ("nopass"), so the
    # commands succeed and print the queue's URL: it must come without the password.
    name = new_name()
    url = f"redis://default:topsecret@127.0.0.1:{valkey.port}/{name}"
    runner = CliRunner()
    out = ""
    try:
        for args in commands:
            result = runner.invoke(cli, [args[0], url, *args[1:]])
            assert result.exit_code == 0, result.output
            out += result.output
    finally:
        runner.invoke(cli, ["rm", url, "--yes", "--missing-ok"])
    return out, f"redis://default@127.0.0.1:{valkey.port}/{name}"


def test_password_not_in_cli_output(valkey: ValkeyServer) -> None:
    out, shown = _outputs(valkey, [["create"], ["stat"], ["check"]])
    assert "topsecret" not in out
    assert shown in out


def test_password_not_in_send_purge_rm_output(valkey: ValkeyServer) -> None:
    out, shown = _outputs(valkey, [["create"], ["send", "x"], ["purge"], ["rm", "--yes"]])
    assert "topsecret" not in out
    assert f"removed {shown}" in out


def test_ls_lists_the_queues_on_a_server(valkey: ValkeyServer) -> None:
    runner = CliRunner()
    names = [new_name(), new_name()]
    server = f"redis://default:topsecret@127.0.0.1:{valkey.port}"
    try:
        for name in names:
            assert runner.invoke(cli, ["create", f"{server}/{name}"]).exit_code == 0
        result = runner.invoke(cli, ["ls", server])
        assert result.exit_code == 0, result.output
        assert "topsecret" not in result.output
        for name in names:
            assert name in result.output
        listed = runner.invoke(cli, ["ls", server, "--json"])
        assert listed.exit_code == 0 and "topsecret" not in listed.output
        # A kernel URL is not a server: usage error.
        assert runner.invoke(cli, ["ls", "posix:///x"]).exit_code == 2
    finally:
        for name in names:
            runner.invoke(cli, ["rm", f"{server}/{name}", "--missing-ok"])
