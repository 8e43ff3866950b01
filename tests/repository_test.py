"""The repository explains itself: its files cite only files inside it (docs/design.md)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TEXT = (".py", ".md", ".flags", ".sh", ".ini", ".cfg", ".toml", ".txt", ".json")
_SKIP_DIRS = {".git", ".venv", "runs", "build", "__pycache__", ".pytest_cache"}
# Design notes that lived outside the repository; spelled in two pieces so that this file
# does not cite them itself.
_OUTSIDE = ("DESIGN" + ".md",)
_DOCS_PATH = re.compile(r"\bdocs/[\w./-]*\w\.(?:md|png|gif|json)\b")


def _text_files():
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            if name.endswith(_TEXT):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield os.path.relpath(path, ROOT), f.read()


def test_no_file_cites_design_notes_outside_the_repository():
    cited = [f"{path}:{text[:text.index(name)].count(chr(10)) + 1} cites {name}"
             for path, text in _text_files() for name in _OUTSIDE if name in text]
    assert not cited, ("These files cite a file that is not in the repository; cite "
                       "docs/design.md's section or the paper's instead:\n" + "\n".join(cited))


def test_cited_docs_files_exist():
    files = dict(_text_files())
    assert "docs/design.md" in files
    missing = sorted({f"{path} cites {m}" for path, text in files.items()
                      for m in _DOCS_PATH.findall(text)
                      if "<" not in m and not os.path.exists(os.path.join(ROOT, m))})
    assert not missing, "Cited files missing from the repository:\n" + "\n".join(missing)


def test_readme_tour_names_every_folder_and_entry_point_of_the_package():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    tour = readme[readme.index("## Tour"):]
    tour = tour[:tour.index("\n## ", 1)]
    package = os.path.join(ROOT, "patchwork_tf")
    names = [f"{name}/" for name in sorted(os.listdir(package))
             if os.path.isfile(os.path.join(package, name, "__init__.py"))]
    names += [name for name in sorted(os.listdir(package))
              if name.endswith(".py") and name != "__init__.py"]
    missing = [name for name in names if f"{name}`" not in tour]
    assert not missing, f"README's tour does not name {missing}; add a row for each."


ENTRY_POINTS = ("evaluate", "export", "report", "serve", "train", "visualize")


def _imported_modules(path):
    """The `patchwork_tf` modules a file imports, anywhere in it (also inside functions)."""
    import ast
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_module_of_the_package_imports_an_entry_point():
    # The entry points map flags onto the library (runs, evaluation.api, training, serving);
    # one that imported another would make an absl main a library.
    entry_modules = {f"patchwork_tf.{name}" for name in ENTRY_POINTS}
    package = os.path.join(ROOT, "patchwork_tf")
    found = []
    for directory, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                found += [f"{os.path.relpath(path, ROOT)} imports {module}"
                          for module in set(_imported_modules(path)) & entry_modules]
    assert not found, "\n".join(sorted(found))
    # The check sees what it looks for.
    assert set(_imported_modules(os.path.join(ROOT, "tests", "training",
                                              "experiments_test.py"))) & entry_modules
