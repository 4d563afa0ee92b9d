"""The CLI reference in docs/cli.md, generated from the commands themselves.

Regenerate with ``python -m distill.cli.reference > docs/cli.md``; a test fails when it is stale.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, get_args, get_origin

import typer.main

from distill.cli import app


def render_reference() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from `--help` by `python -m distill.cli.reference`.",
        "",
    ]
    _render(root, [], lines)
    return "\n".join(lines).rstrip() + "\n"


def _render(command: Any, path: list[str], lines: list[str]) -> None:
    subcommands = getattr(command, "commands", None)
    if path:
        lines += [f"## `distill {' '.join(path)}`", "", (command.help or "").strip(), ""]
        options = [param for param in command.params if getattr(param, "opts", None)]
        if options and not subcommands:
            lines += ["| option | meaning |", "|---|---|"]
            for param in options:
                flag = ", ".join(f"`{opt}`" for opt in param.opts)
                help_text = " ".join((getattr(param, "help", "") or "").split())
                choices = _choices(param)
                if choices:  # a closed choice: its values, as --help lists them
                    help_text += f" One of: {', '.join(choices)}."
                lines.append(f"| {flag} | {help_text} |")
            lines.append("")
    for name, sub in (subcommands or {}).items():
        _render(sub, [*path, name], lines)


def _choices(param: Any) -> list[str]:
    """The values of an option typed as an enum or a Literal (``X | None`` included)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(member.value) for member in candidate]
    return []


if __name__ == "__main__":
    print(render_reference(), end="")
