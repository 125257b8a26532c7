"""Count code lines (python benchmarks/lesson_core_lines.py) (no docstrings, comments, blank lines) of the lesson core and the share of input checks.

Input-check lines: a line that calls a check_* function, `.check(...)` or `validated`, raises ValueError or
TypeError, is the `if` right before such a raise, belongs to `__post_init__` (a config's validation), or to a
private function whose only job is a check. A dataclass field that names its checker is counted as a field
declaration, not a check. Run from the repository root.
"""
import ast, io, sys, tokenize
from pathlib import Path

def code_lines(path):
    src = Path(path).read_text()
    tree = ast.parse(src)
    doc = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            doc |= set(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    lines = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        for n in range(tok.start[0], tok.end[0] + 1):
            if n not in doc:
                lines[n] = src.splitlines()[n - 1]
    return tree, lines

def span(node):
    return set(range(node.lineno, node.end_lineno + 1))

def check_lines(tree, lines):
    marked = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(node.exc.func, "id", "") in ("ValueError", "TypeError"):
            marked |= span(node)
        if isinstance(node, ast.If) and any(isinstance(b, ast.Raise) for b in node.body):
            marked |= set(range(node.lineno, node.body[0].lineno))
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name.startswith("check_") or name in ("validated", "check"):
                marked |= span(node)
        if isinstance(node, ast.FunctionDef) and node.name == "__post_init__":  # a config's validation
            marked |= span(node)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and len(node.body) == 1 and \
                "check" in ast.unparse(node.body[0]):
            marked |= span(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any("check" in a.name for a in node.names):
            pass  # imports are not checks
    return {n for n in marked if n in lines}

def core_lines(path, names):
    tree, lines = code_lines(path)
    total = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            rng = set(range(min([d.lineno for d in node.decorator_list] + [node.lineno]), node.end_lineno + 1))
            total |= {n for n in rng if n in lines}
    return total, lines

files = {"sae_utils/model.py": {"SparseAutoencoder"},
         "sae_utils/penalties.py": {"kl_divergence", "kl_sparsity_penalty", "l1_penalty", "reconstruction_bce"},
         "sae_utils/train.py": {"train_epoch"}}
core_total = 0
all_code = all_checks = 0
for path, names in files.items():
    tree, lines = code_lines(path)
    checks = check_lines(tree, lines)
    core, _ = core_lines(path, names)
    core_code = core - checks
    print(f"{path}: {len(lines)} code lines, {len(checks)} input-check lines ({100 * len(checks) / len(lines):.1f} %); "
          f"core ({', '.join(sorted(names))}): {len(core)} lines, {len(core_code)} without checks")
    core_total += len(core); all_code += len(lines); all_checks += len(checks)
print(f"core: {core_total} code lines; checks: {all_checks} of {all_code} code lines = {100 * all_checks / all_code:.1f} %")
