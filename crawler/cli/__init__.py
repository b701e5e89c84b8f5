"""The `forecourt` command: a thin layer over the library.

Each command group lives in its own module and registers itself on `app`. Domain errors
become one readable line with the fix; bad arguments too. No business rules here.
"""

from __future__ import annotations

import sys

import typer

from crawler.cli.common import check_environment, console, fail
from crawler.errors import ForecourtError

app = typer.Typer(
    name="forecourt",
    help="Keep dealers' vehicle inventory current: crawl sites, ingest feeds, check, store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _environment(ctx: typer.Context) -> None:
    # Before any command (not for --help): a bad setting is one line, not a traceback from
    # wherever it is first read; a misspelt variable is named once.
    if not (ctx.obj or {}).get("help"):
        check_environment()


def _register() -> None:
    """Every module in crawler/cli with a `register(app)` adds its commands."""
    import importlib
    import pkgutil

    import crawler.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"crawler.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(app)


# Typer vendors click; its usage errors are the bases of the exported BadParameter.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
ClickExit = next(c for c in typer.Exit.__mro__ if c.__name__ == "Exit")


def main(argv: list[str] | None = None) -> int:
    _register()
    command = typer.main.get_command(app)
    args = argv if argv is not None else sys.argv[1:]
    try:
        # Outside standalone mode click returns a command's `typer.Exit(code)` rather than
        # raising it: that return value is the exit status.
        status = command.main(args=args, prog_name="forecourt", standalone_mode=False,
                              obj={"help": any(a in ("-h", "--help") for a in args)})
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(exc.ctx.get_help() if exc.ctx else "", markup=False)
            return 0
        where = exc.ctx.command_path if exc.ctx else "forecourt"
        return fail(f"{exc.format_message()}", f"see `{where} --help`", code=2)
    except typer.Abort:
        return fail("aborted", None, code=130)
    except (typer.Exit, ClickExit) as exc:
        return getattr(exc, "exit_code", 0)
    except ForecourtError as exc:
        return fail(str(exc), exc.hint, code=getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        return fail("interrupted", None, code=130)
    except Exception as exc:  # a bug: one line, the traceback kept in a file
        from crawler.cli import crash

        return fail(*crash.unexpected(exc), code=1)
    if status == 130:  # typer's Exit for a KeyboardInterrupt inside a command
        return fail("interrupted", None, code=130)
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
