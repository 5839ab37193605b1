"""YAML that remembers where things are: parse a reviewable data file and keep the line of every key and item.

The control catalogue, the municipality profiles and the scenario files are all YAML written by people, and
every mistake in them must be reported as `file:line: field: rule`. This is the one place that parses such
files; it must never interpret what the data means (that is each loader's job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Marks", "Problem", "YamlProblems", "dotted", "line_for", "load_marked"]

Marks = dict[tuple[object, ...], int]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a data file, located for the person who must fix it."""

    file: str
    line: int | None
    field: str
    rule: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.rule}"


class YamlProblems(ValueError):
    """The file is not well-formed YAML, is empty, or gives a key twice."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def dotted(path: tuple[object, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(root)"


def load_marked(text: str, name: str) -> tuple[Any, Marks]:
    """Parse ``text`` (one YAML document) and return the data and the 1-based line of each key and list item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlProblems([Problem(name, None, "(file)", "the file is empty")])
        marks: Marks = {}
        problems: list[Problem] = []

        def walk(n: yaml.Node, path: tuple[object, ...]) -> None:
            marks.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                seen: set[str] = set()
                for k, v in n.value:
                    key = str(k.value)
                    if key in seen:
                        problems.append(Problem(name, k.start_mark.line + 1, dotted((*path, key)), "key given twice"))
                    seen.add(key)
                    # A key's own line is where a reader looks for it, even when its value starts below.
                    marks[(*path, key)] = k.start_mark.line + 1
                    walk(v, (*path, key))
            elif isinstance(n, yaml.SequenceNode):
                for i, v in enumerate(n.value):
                    walk(v, (*path, i))

        walk(node, ())
        if problems:
            raise YamlProblems(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblems([Problem(name, line, "(YAML syntax)", str(exc.problem or exc))]) from None
    finally:
        loader.dispose()
    return data, marks


def line_for(marks: Marks, path: tuple[object, ...]) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in marks:
            return marks[path[:cut]]
    return None
