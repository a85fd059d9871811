"""Extract the option flags of ``vllm serve`` from an unpacked vLLM source tree (no import).

Regenerates ``tests/data/vllm_serve_flags_<version>.txt``, the pinned flag list that
``tests/test_exporters.py`` checks every emitted flag against (vLLM is not a dependency)::

    pip download vllm==0.33.0 --no-deps --only-binary :all: -d /tmp/vllm
    unzip -q /tmp/vllm/vllm-0.33.0-*.whl 'vllm/*.py' -d /tmp/vllm/src
    python tests/data/extract_vllm_flags.py /tmp/vllm/src/vllm > flags.txt  # + the header lines

What ``vllm serve`` registers (vllm/entrypoints/cli/serve.py -> ``make_arg_parser``):

- the literal ``add_argument`` flags of ``make_arg_parser`` in
  vllm/entrypoints/common/cli_args.py (vllm/entrypoints/openai/cli_args.py before 0.2x);
- one ``--field-name`` per field of ``BaseFrontendArgs``/``FrontendArgs`` there
  (``FrontendArgs.add_cli_args`` turns each dataclass field into a flag);
- the literal ``add_argument`` flags of ``EngineArgs.add_cli_args`` and
  ``AsyncEngineArgs.add_cli_args`` in vllm/engine/arg_utils.py.

The ``--no-X`` negations that argparse adds for boolean options are not listed. For the options
whose values the exporter sets from a closed set, the allowed values follow the flag on its line
(from the ``Literal`` type aliases named in :data:`CHOICES`).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CHOICES: dict[str, tuple[str, str]] = {
    "--dtype": ("config/model.py", "ModelDType"),
    "--kv-cache-dtype": ("config/cache.py", "CacheDType"),
    "--kv-offloading-backend": ("config/cache.py", "KVOffloadingBackend"),
    "--quantization": ("model_executor/layers/quantization/__init__.py", "QuantizationMethods"),
}
"""Flag -> (file under the vllm package, name of the Literal alias of its values)."""


def _flags_of_calls(node: ast.AST) -> list[str]:
    """The string constants starting with ``-`` passed to ``*.add_argument(...)`` in ``node``."""
    out: list[str] = []
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "add_argument"
        ):
            out.extend(
                a.value
                for a in call.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] == "-"
            )
    return out


def _functions(tree: ast.AST, name: str) -> list[ast.AST]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
    ]


def _dataclass_flags(tree: ast.AST, classes: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in classes:
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and not stmt.target.id.startswith("_")
                    and "ClassVar" not in ast.unparse(stmt.annotation)
                ):
                    out.append("--" + stmt.target.id.replace("_", "-"))
    return out


def _literal_values(path: Path, alias: str) -> list[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == alias for t in node.targets)
            and isinstance(node.value, ast.Subscript)
        ):
            elts = node.value.slice
            items = elts.elts if isinstance(elts, ast.Tuple) else [elts]
            return [e.value for e in items if isinstance(e, ast.Constant)]
    raise SystemExit(f"{alias} not found in {path}")


def extract(root: Path) -> list[str]:
    """Lines of the flag list for the vLLM package at ``root`` (the ``vllm/`` folder)."""
    cli = root / "entrypoints/common/cli_args.py"
    if not cli.exists():
        cli = root / "entrypoints/openai/cli_args.py"
    cli_tree = ast.parse(cli.read_text())
    engine_tree = ast.parse((root / "engine/arg_utils.py").read_text())
    flags: list[str] = []
    for fn in _functions(cli_tree, "make_arg_parser"):
        flags += _flags_of_calls(fn)
    flags += _dataclass_flags(cli_tree, ("BaseFrontendArgs", "FrontendArgs"))
    for fn in _functions(engine_tree, "add_cli_args"):
        flags += _flags_of_calls(fn)
    lines = []
    for flag in sorted(set(flags)):
        if flag in CHOICES:
            rel, alias = CHOICES[flag]
            flag = " ".join([flag, *_literal_values(root / rel, alias)])
        lines.append(flag)
    return lines


if __name__ == "__main__":
    sys.stdout.write("\n".join(extract(Path(sys.argv[1]))) + "\n")
