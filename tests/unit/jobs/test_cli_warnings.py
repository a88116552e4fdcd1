"""The CLI hides the local set-up's notices (Bigtable emulator, Google clients'
deprecations) even after Feast's imports put their own warning filters first, and still
shows every other warning."""

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import os, warnings
    import click
    from click.testing import CliRunner
    from jobs import cli

    @click.command()
    @click.pass_obj
    def probe(ctx):
        import feast.feature_view  # noqa: F401  (adds simplefilter("once", ...) filters)
        warnings.warn("Connecting to Bigtable emulator at 127.0.0.1:1", RuntimeWarning)
        where = os.path.join(os.sep, "lib", "google", "pubsub_v1", "client.py")
        warnings.warn_explicit("flag is deprecated", DeprecationWarning, where, 7)
        warnings.warn("a user's own warning", UserWarning)
        warnings.warn("another runtime warning", RuntimeWarning)

    cli.main.add_command(probe)
    result = CliRunner().invoke(cli.main, [*ARGS, "probe"], catch_exceptions=False)
    import sys
    sys.__stderr__.write(result.stderr)
    """
)


def _stderr(args: list[str]) -> str:
    code = f"ARGS = {args!r}\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stderr


def test_local_notices_are_hidden_and_other_warnings_shown(tmp_path) -> None:
    err = _stderr(["--state-dir", str(tmp_path)])
    assert "Bigtable emulator" not in err
    assert "flag is deprecated" not in err
    assert "a user's own warning" in err
    assert "another runtime warning" in err
