"""A hint can only name a flag that exists on the command it is about (issue 9, "hints that point to the
wrong fix": eval named ``--max-judge-error-rate``, train named ``--judge-url`` and ``--judge local``).

Every string literal of the package (docstrings aside) and every command line in README.md, docs/ and the
recipes' comments is searched for ``--flags``. Each flag belongs to the nearest ``medix-r1 CMD [SUB]`` before
it in the same code span or line; a flag after another tool's name (``vllm serve --port``) is that tool's;
a flag with no command before it belongs to the command(s) whose code shows the message (by module). The
flag must then be an option of that command, read from the real parser (:func:`medix_r1.cli.build_parser`).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from medix_r1.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "medix_r1"

FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*[a-z0-9])(?![\w])")
MEDIX = re.compile(r"(?:(?<![\w/.'\[-])medix-r1|python -m medix_r1\.cli)(?![\w/.'\[\]-])"
                   r"(?:[ \t]+([a-z][a-z-]*))?(?:[ \t]+([a-z][a-z-]*))?")
# other programs whose flags a message may quote; their flags are not ours to check
OTHER = re.compile(r"\b(?:vllm serve|vllm|pip3? install|pip|accelerate launch|accelerate|torchrun|transformers serve|"
                   r"llama-server|python3? -m (?!medix_r1\.cli)[\w.]+|python3? [\w/.-]+\.py|pytest|make|git|"
                   r"huggingface-cli|hf|ruff|docker|nvidia-smi|curl|uv)(?![\w-])")

# Which commands show the messages of a module that names a flag without naming a command. Modules shared by
# several commands must only name flags that all of them have.
MODULE_COMMANDS = {
    "commands/data.py": ("data",), "commands/score.py": ("score",), "commands/train.py": ("train",),
    "commands/eval.py": ("eval",), "commands/demo.py": ("demo",), "commands/app.py": ("app",),
    "commands/review.py": ("review",), "demo.py": ("demo",), "data": ("data",), "train": ("train",),
    "eval": ("eval",), "app": ("app",), "review": ("review",), "rewards/score_file.py": ("score",),
    "judge": ("score", "eval", "train"), "clients": ("score", "eval", "train"), "budget.py": ("score", "eval", "train"),
    "cli.py": (None,),
}
# The test helpers have parsers of their own: only their `medix-r1 ...` mentions are checked.
OWN_PARSERS = ("testing/",)


def _commands() -> dict[str, set[str]]:
    """``{"eval": options of eval and all its subcommands, "eval run": options of eval run (and eval), ...}``;
    ``None`` is the top-level parser."""
    top = build_parser()
    table: dict = {None: set(top._option_string_actions)}

    def walk(parser: argparse.ArgumentParser, name: str, inherited: set[str]) -> set[str]:
        own = set(parser._option_string_actions) | inherited | table[None]
        everything = set(own)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    everything |= walk(subparser, f"{name} {sub}", own)
        table[name] = everything if name.count(" ") == 0 else own | everything
        return everything

    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, parser in action.choices.items():
                walk(parser, name, set())
    return table


COMMANDS = _commands()


def _subcommands(cmd: str) -> set[str]:
    return {k.split(" ", 1)[1] for k in COMMANDS if isinstance(k, str) and k.startswith(cmd + " ")}


def _segments(text: str):
    """Code spans (between backticks), and the rest cut at line ends (a line ending in a backslash
    continues), semicolons and parentheses: a command quoted in prose ends there."""
    for i, part in enumerate(text.split("`")):
        if i % 2:
            yield part
        else:
            for line in part.replace("\\\n", " ").split("\n"):
                yield from re.split(r"[;()]", line)


def flag_targets(text: str, default: tuple, *, lines: bool = False):
    """Yield ``(flag, command)`` for each of our flags in ``text``; ``command`` is ``"eval run"``-style, a
    tuple of the default commands, or ``"?CMD"`` for a command that does not exist. A flag quoted for
    another tool earlier in the same text stays that tool's. ``lines``: split into lines first (Markdown,
    where code fences make backticks unpaired across lines)."""
    others: set[str] = set()
    segments = [s for line in text.splitlines() for s in _segments(line)] if lines else _segments(text)
    for seg in segments:
        mentions = []
        for m in MEDIX.finditer(seg):
            cmd, sub = m.group(1), m.group(2)
            if cmd is None or cmd.upper() == cmd or cmd in ("command",):
                target = (None,)  # `medix-r1 --help`, `medix-r1 COMMAND --help`: the top-level parser
            elif cmd not in COMMANDS:
                target = f"?{cmd}"
            else:
                target = f"{cmd} {sub}" if sub and sub in _subcommands(cmd) else cmd
            mentions.append((m.start(), target))
        mentions += [(m.start(), "other") for m in OTHER.finditer(seg)]
        mentions.sort(key=lambda x: x[0])
        for f in FLAG.finditer(seg):
            before = [t for pos, t in mentions if pos < f.start()]
            target = before[-1] if before else ("other" if f.group(0) in others else default)
            if target == "other":
                others.add(f.group(0))
            else:
                yield f.group(0), target


def _problems(flag: str, target, where: str) -> list[str]:
    if isinstance(target, str) and target.startswith("?"):
        return [f"{where}: names `medix-r1 {target[1:]}`, which is not a command (flag {flag})"]
    targets = target if isinstance(target, tuple) else (target,)
    out = []
    for t in targets:
        if t not in COMMANDS:
            continue  # a command not registered in this checkout (e.g. a module not delivered yet)
        if flag not in COMMANDS[t] and flag != "--help":
            out.append(f"{where}: {flag} is not an option of `medix-r1{' ' + t if t else ''}`")
    return out


def _module_default(path: Path) -> tuple | None:
    rel = path.relative_to(SRC).as_posix()
    if rel.startswith(OWN_PARSERS):
        return ("other",)
    for key, cmds in sorted(MODULE_COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if rel == key or rel.startswith(key + "/"):
            return cmds
    return None  # shared elsewhere: any command will do


def _string_constants(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip.add(id(node.value))  # docstrings (of modules, classes, functions, attributes) are not messages
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            skip.update(id(a) for a in node.args)  # the definitions themselves
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # an f-string: its literal parts joined, with a placeholder where the values go
            text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            skip.update(id(v) for v in node.values)
            yield node.lineno, text
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if re.fullmatch(r"-{1,2}[\w-]+", node.value):
                continue  # a bare flag name is data (argv parsing, a comparison), not a message
            yield node.lineno, node.value


def source_problems() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        default = _module_default(path)
        for lineno, text in _string_constants(path):
            for flag, target in flag_targets(text, default or ("any",)):
                if target == ("any",):
                    if not any(flag in opts for opts in COMMANDS.values()):
                        problems.append(f"{path.relative_to(REPO)}:{lineno}: {flag} is not an option of any "
                                        "command")
                    continue
                if target == ("other",):
                    continue
                problems += _problems(flag, target, f"{path.relative_to(REPO)}:{lineno}")
    return problems


def doc_problems() -> list[str]:
    """Command lines in the docs: only flags after a ``medix-r1 CMD`` are checked (prose may name anything)."""
    problems = []
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             *sorted((REPO / "recipes").rglob("*.yaml")), *sorted((REPO / "recipes").rglob("*.yml"))]
    for path in files:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):  # only the comments
            text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
        for flag, target in flag_targets(text, ("other",), lines=True):
            if target == ("other",):
                continue
            problems += _problems(flag, target, str(path.relative_to(REPO)))
    return problems


def test_every_flag_named_in_a_message_exists_on_its_command():
    problems = source_problems()
    assert not problems, "\n".join(problems)


def test_every_flag_in_the_docs_command_lines_exists():
    problems = doc_problems()
    assert not problems, "\n".join(problems)


# The checker itself, on the cases issue 9 found (so the test above cannot pass by not looking).
@pytest.mark.parametrize("text, default, expected", [
    ("raise --max-judge-error-rate to tolerate more failures", ("eval",), ["--max-judge-error-rate"]),
    ("start one, or pass --judge-url / --judge local", ("train",), ["--judge-url", "--judge"]),
    ("run `medix-r1 eval score --output-dir X --no-such`", ("any",), ["--no-such"]),
    ("`vllm serve MODEL --port 8001`; then pass --model-url", ("eval",), []),
    ("medix-r1 trian recipes/x.yaml --dry-run", ("other",), ["--dry-run"]),
])
def test_the_checker_finds_issue_9s_wrong_hints(text, default, expected):
    found = []
    for flag, target in flag_targets(text, default):
        if _problems(flag, target, "x"):
            found.append(flag)
    assert found == expected


def test_the_checker_reads_real_parsers():
    assert "--dry-run" in COMMANDS["train"] and "--tasks" in COMMANDS["eval run"]
    assert "--verbose" in COMMANDS["data validate"]  # -v after the subcommand
    assert "--judge-url" not in COMMANDS["train"]
