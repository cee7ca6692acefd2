"""Reference pages generated from the code, so they cannot drift from it (``mubench docs``):

- ``docs/cli.md``: every command and sub-command of the CLI with its arguments, options, defaults and help, read
  from the click command tree that Typer builds (the caller passes it: tools never import the CLI);
- the errors block of ``docs/troubleshooting.md``: every one-line error message a stage or tool raises, read
  from the source (``raise SomeError("...")`` with a literal or f-string message), with the fix the message
  itself names after its "; ". Placeholders are shown as ``{what}``, the expression the code fills in.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mubench.core.errors import InvalidValue
from mubench.core.io import atomic_write_text, read_utf8

ERRORS_START = "<!-- errors: `mubench docs` lists these from the source; do not edit by hand -->"
ERRORS_END = "<!-- /errors -->"
CLI_HEADER = ("# CLI reference\n\nGenerated from the command-line app by `mubench docs` (a test fails when it is "
              "stale). Every stage command reads `params.yaml` unless told otherwise; an error is one line "
              "starting `error:` and a non-zero exit (2 for a configuration or name problem; "
              "[Troubleshooting](troubleshooting.md)). `MUBENCH_DEBUG=1` prints the traceback above it.\n")


def _param_row(param: Any, ctx: Any) -> str:
    """One table row for a parameter (duck-typed: Typer builds its own click-like objects)."""
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
        kind = "argument" + ("" if param.required else ", optional")
    else:
        name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        shown = param.display_type(ctx) if callable(getattr(param, "display_type", None)) else ""
        kind = "flag" if getattr(param, "is_flag", False) else f"option {shown}".strip()
    help_text = (param.help or "").replace("|", "\\|").replace("\n", " ")
    default = param.default
    sep = "" if not help_text or help_text.endswith((".", ")")) else "."
    shown = "" if default in (None, False, (), []) or callable(default) else f"{sep} Default: `{default}`."
    return f"| {name} | {kind.replace('<', '&lt;').replace('>', '&gt;')} | {help_text}{shown} |"


def _is_group(command: Any) -> bool:
    return callable(getattr(command, "list_commands", None))


def _command_md(command: Any, path: list[str], level: int, parent: Any) -> list[str]:
    ctx = command.make_context(path[-1], [], resilient_parsing=True, parent=parent)
    lines = [f"{'#' * level} `{' '.join(path)}`", ""]
    if command.help:
        lines += [command.help.strip().replace("\b\n", ""), ""]
    usage = command.collect_usage_pieces(ctx)
    lines += ["```", f"{' '.join(path)} {' '.join(usage)}".rstrip(), "```", ""]
    params = [p for p in command.get_params(ctx) if p.name != "help"]
    if params:
        lines += ["| name | kind | what |", "|---|---|---|", *(_param_row(p, ctx) for p in params), ""]
    if _is_group(command):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines += _command_md(sub, [*path, name], min(level + 1, 4), ctx)
    return lines


def cli_markdown(root: Any, prog: str = "mubench") -> str:
    """The whole CLI as one markdown page (``root``: the click-like group Typer builds for the app)."""
    ctx = root.make_context(prog, [], resilient_parsing=True)
    lines = [CLI_HEADER, "| command | what |", "|---|---|"]
    names = sorted(n for n in root.list_commands(ctx) if not root.get_command(ctx, n).hidden)
    for name in names:
        first = " ".join((root.get_command(ctx, name).help or "").strip().split("\n\n")[0].split())
        lines.append(f"| [`{prog} {name}`](#{prog}-{name}) | {first} |")
    lines.append("")
    for name in names:
        lines += _command_md(root.get_command(ctx, name), [prog, name], 2, ctx)
    return "\n".join(lines).rstrip() + "\n"


def _template(node: ast.expr) -> str | None:
    """The text of a message expression with its placeholders, or None when it is not a literal message."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            else:
                out.append("{" + ast.unparse(part.value) + "}")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


def error_messages(package: Path) -> list[tuple[str, int, str, str]]:
    """(module, line, exception class, message) of every raise with a literal message under ``package``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(read_utf8(path), filename=str(path))
        module = path.relative_to(package.parent).as_posix()
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            text = _template(node.exc.args[0])
            if text is None or len(text) < 12:
                continue
            kind = ast.unparse(node.exc.func)
            found.append((module, node.lineno, kind, " ".join(text.split())))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def split_fix(message: str) -> tuple[str, str]:
    """(what is wrong, what to do): the message split at its first "; " outside a placeholder."""
    depth = 0
    for i, ch in enumerate(message):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and message.startswith("; ", i):
            return message[:i], message[i + 2:]
    return message, ""


def errors_markdown(package: Path) -> str:
    """The errors block: one table per module, message and its fix."""
    by_module: dict[str, list[tuple[str, str]]] = {}
    for module, _, _, message in error_messages(package):
        what, fix = split_fix(message)
        by_module.setdefault(module, []).append((what, fix))
    lines = []
    for module, rows in by_module.items():
        lines += [f"**`{module}`**", "", "| error: ... | what to do |", "|---|---|"]
        seen = set()
        for what, fix in rows:
            if (what, fix) in seen:
                continue
            seen.add((what, fix))
            lines.append(f"| `{_cell(what)}` | {('`' + _cell(fix) + '`') if fix else 'the message says it'} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def sync_docs(root: Path, cli: Any, check_only: bool = False) -> list[str]:
    """Write docs/cli.md and the errors block of docs/troubleshooting.md; the pages that changed (with
    ``check_only``: nothing written, a stale page is a ValueError)."""
    changed = []
    cli_page = root / "docs" / "cli.md"
    text = cli_markdown(cli)
    if not cli_page.is_file() or read_utf8(cli_page) != text:
        changed.append("docs/cli.md")
        if not check_only:
            atomic_write_text(cli_page, text)
    page = root / "docs" / "troubleshooting.md"
    old = read_utf8(page)
    if old.count(ERRORS_START) != 1 or old.count(ERRORS_END) != 1:
        raise InvalidValue(f"{page}: needs exactly one errors block ({ERRORS_START!r} ... {ERRORS_END!r})")
    current = old[old.index(ERRORS_START):old.index(ERRORS_END) + len(ERRORS_END)]
    new = f"{ERRORS_START}\n{errors_markdown(root / 'mubench')}\n{ERRORS_END}"
    if current != new:
        changed.append("docs/troubleshooting.md")
        if not check_only:
            atomic_write_text(page, old.replace(current, new))
    if changed and check_only:
        raise InvalidValue(f"{', '.join(changed)}: stale; run `mubench docs`")
    return changed
