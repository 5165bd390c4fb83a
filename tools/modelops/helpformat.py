"""Help in click's own layout (`Usage: modelops new [OPTIONS] NAME`, `--root DIR`, bare
flags), the one most Python command lines share, instead of typer's `{name}` and
`<bool>` placeholders, which suggest that `--check true` would be accepted."""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperCommand, TyperGroup

EXIT_CODES = ("Exit codes: 0 success; 1 invalid input or a failed check (the problems are "
              "on stderr); 2 usage error (an unknown option, a bad value).")


def metavar(param: Any) -> str:
    """What a value looks like: the declared metavar, the choices, else the type's name."""
    if param.metavar:
        return param.metavar
    desc = param.type_descriptor
    if desc.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc.is_path:
        return "DIR" if desc.path_type == "dir" else "PATH"
    return {int: "INTEGER", float: "NUMBER"}.get(desc.annotation, "TEXT")


def _argument_name(param: Any) -> str:
    name = param.metavar or param.name.upper()
    return name + "..." if param.nargs != 1 else name


def _option_record(param: Any) -> tuple[str, str]:
    names = ", ".join(sorted(param.opts, key=len))
    if not param.is_flag:
        names += f" {metavar(param)}"
    extra = []
    default = param.default
    if param.required:
        extra.append("required")
    elif param.show_default and default not in (None, False, "", ()) and not param.is_flag:
        extra.append(f"default: {getattr(default, 'value', default)}")
    text = param.help or ""
    return names, f"{text}  [{'; '.join(extra)}]" if extra else text


def _format_params(command: click.Command, ctx: click.Context,
                   formatter: click.HelpFormatter) -> None:
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [(_argument_name(p), p.help or "") for p in params
                 if p.param_type_name == "argument"]
    options = [_option_record(p) for p in params if p.param_type_name == "option"]
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


def _format_exit_codes(formatter: click.HelpFormatter) -> None:
    formatter.write_paragraph()
    formatter.write_text(EXIT_CODES)


class Command(TyperCommand):
    """One command's help: arguments by name, options with a value placeholder only when
    they take a value, defaults shown, the exit codes last."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_params(self, ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_exit_codes(formatter)


class Group(TyperGroup):
    """The top level and `logs`: the same layout."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _format_exit_codes(formatter)
