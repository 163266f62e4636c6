"""Mutation score of one module against its own test file(s), with mutmut 3.

    python scripts/mutation.py yolo_teach/nms.py tests/test_nms.py tests/test_box_dtypes.py

mutmut reads one ``[tool.mutmut]`` section and mutates a copy in ``./mutants``. To run a single
module against chosen tests without touching the working tree, this script copies the package,
the chosen tests and ``pyproject.toml`` into a temporary folder, narrows the section there
(``only_mutate`` = the module, ``pytest_add_cli_args_test_selection`` = the tests), runs
``mutmut run`` and prints the score: killed / total, where a timeout counts as killed and lines
marked ``# pragma: no mutate`` (equivalent mutants, listed in ``tests/MUTATION.md``) make no
mutants at all. Surviving mutants are printed as diffs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
KILLED = {1: "killed", 3: "killed", 24: "timeout", -24: "timeout", 36: "timeout", 152: "timeout",
          255: "timeout"}


def narrowed_pyproject(module: str, tests: list[str]) -> str:
    """pyproject.toml with its ``[tool.mutmut]`` section narrowed to one module and its tests."""
    text = (ROOT / "pyproject.toml").read_text()
    section = tomllib.loads(text)["tool"]["mutmut"]
    section.update(only_mutate=[module], pytest_add_cli_args_test_selection=tests)
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)  # the section, replaced
    lines = [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    return text.rstrip() + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="e.g. yolo_teach/nms.py")
    parser.add_argument("tests", nargs="+", help="e.g. tests/test_nms.py")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutmut workers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-pragmas", action="store_true",
                        help="mutate the lines marked equivalent too (to check what survives)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="yolo_teach_mutation_"))
    try:
        shutil.copytree(ROOT / "yolo_teach", work / "yolo_teach",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if args.no_pragmas:
            copy = work / args.module
            copy.write_text(copy.read_text().replace("# pragma: no mutate", "# (pragma off)"))
        (work / "tests").mkdir()
        for test in args.tests:
            shutil.copy2(ROOT / test, work / test)
        (work / "pyproject.toml").write_text(narrowed_pyproject(args.module, args.tests))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        mutmut = [sys.executable, "-m", "mutmut"]
        run = subprocess.run([*mutmut, "run", "--max-children", str(args.max_children)],
                             cwd=work, env=env, capture_output=True, text=True)
        meta = work / "mutants" / (args.module + ".meta")
        if not meta.exists():
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
            return 1
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        status = {name: KILLED.get(code, "survived" if code == 0 else f"exit {code}")
                  for name, code in codes.items()}
        survivors = sorted(name for name, s in status.items() if s not in ("killed", "timeout"))
        for name in survivors:
            diff = subprocess.run([*mutmut, "show", name], cwd=work, env=env,
                                  capture_output=True, text=True).stdout
            print(f"--- {status[name]}: {diff.strip()}\n")
        pragmas = 0 if args.no_pragmas else (ROOT / args.module).read_text().count(
            "# pragma: no mutate")
        killed = len(status) - len(survivors)
        print(f"{args.module} vs {' '.join(args.tests)}: {dict(Counter(status.values()))}")
        print(f"score {killed}/{len(status)} = {killed / max(len(status), 1):.1%} "
              f"({pragmas} lines marked equivalent, no mutants made)")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
