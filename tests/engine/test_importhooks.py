"""Post-import watches on top of wrapt's importer: every import anew, never a loaded module, removable."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator

import pytest

from quantguard.engine import importhooks

SOURCE = "VALUE = 1\n"


@pytest.fixture
def watched() -> Iterator[Callable[[str], list]]:
    """``watched(name)`` watches ``name`` with a recording callback; every watch is removed afterwards."""
    made: list[tuple[str, Callable]] = []

    def watch(name: str) -> list:
        seen: list = []
        callback = seen.append
        importhooks.watch(name, callback)
        made.append((name, callback))
        return seen

    yield watch
    for name, callback in made:
        importhooks.unwatch(name, callback)


def _import_anew(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_every_import_anew_is_reported(make_module, watched):
    make_module("qgt_hook_fresh", SOURCE, load=False)
    seen = watched("qgt_hook_fresh")
    first = importlib.import_module("qgt_hook_fresh")
    assert seen == [first]
    second = _import_anew("qgt_hook_fresh")
    assert second is not first and seen == [first, second]


def test_a_loaded_module_is_not_reported_until_imported_again(make_module, watched):
    loaded = make_module("qgt_hook_loaded", SOURCE)
    seen = watched("qgt_hook_loaded")
    assert seen == []
    assert importlib.import_module("qgt_hook_loaded") is loaded and seen == []
    again = _import_anew("qgt_hook_loaded")
    assert seen == [again]


def test_each_watcher_is_called_once(make_module, watched):
    make_module("qgt_hook_two", SOURCE, load=False)
    first, second = watched("qgt_hook_two"), watched("qgt_hook_two")
    module = importlib.import_module("qgt_hook_two")
    assert first == [module] and second == [module]


def test_unwatch_stops_the_calls_and_a_new_watch_is_called_once(make_module):
    make_module("qgt_hook_gone", SOURCE, load=False)
    seen: list = []
    importhooks.watch("qgt_hook_gone", seen.append)
    importhooks.unwatch("qgt_hook_gone", seen.append)
    assert importhooks._finder not in sys.meta_path  # nothing watched: nothing in the import path
    importlib.import_module("qgt_hook_gone")  # the hook armed with wrapt still fires, and calls nothing
    assert seen == []
    sys.modules.pop("qgt_hook_gone")
    importhooks.watch("qgt_hook_gone", seen.append)
    try:
        module = importlib.import_module("qgt_hook_gone")
    finally:
        importhooks.unwatch("qgt_hook_gone", seen.append)
    assert seen == [module]


def test_a_module_served_by_another_finder_is_reported(tmp_path, watched):
    """Like the simulator's finder (inserted before the path finder): the hook chains whichever loader finds it."""
    path = tmp_path / "served_elsewhere.py"
    path.write_text(SOURCE)

    class Serve:
        def find_spec(self, fullname, path_=None, target=None):
            if fullname == "qgt_hook_served":
                return importlib.util.spec_from_file_location(fullname, path)
            return None

    seen = watched("qgt_hook_served")
    serve = Serve()
    sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder), serve)
    try:
        module = importlib.import_module("qgt_hook_served")
    finally:
        sys.meta_path.remove(serve)
        sys.modules.pop("qgt_hook_served", None)
    assert seen == [module] and module.__file__ == str(path)
