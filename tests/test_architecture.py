"""The package's shape: no import cycle, memory policies as plug-ins, the model's memory and frame rate as
defaults, and one meaning of each preset in the CLI and the lmms-eval plug-in."""

import ast
import json
import shutil
from pathlib import Path

import pytest

from videochat_online.cli import main
from videochat_online.memory import MemorySettings
from videochat_online.stream_config import resolve_memory

PACKAGE = Path(__file__).resolve().parents[1] / "videochat_online"


def answers(capsys) -> list[dict]:
    """The --json answers printed (a library may print a line of its own on first import)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules a file imports, at any depth of the file (lazy imports in functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import x`: the module x
    ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}  # `from . import x` names x only
    return {m for m in found if m in modules and m != name and m not in ancestors}


def test_no_import_cycle_in_the_package():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(files)) for name, path in files.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert len(graph) > 40 and graph["videochat_online.memory.config"]  # the scan saw the package


# --------------------------------------------------------------------------------------------------
# The model's memory and frame rate are the defaults
# --------------------------------------------------------------------------------------------------
def test_a_checkpoints_memory_and_fps_are_the_stream_defaults(tiny_dir, demo_mp4, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_dir(), model)
    config = json.loads((model / "config.json").read_text())
    config["memory"] = {"mode": "window", "window": 3}
    config["fps"] = 4.0
    (model / "config.json").write_text(json.dumps(config))
    assert main(["stream", str(demo_mp4), "--model", str(model), "--ask", "2:Where?", "--json", "--show-memory",
                 "--max-new-tokens", "2"]) == 0
    (answer,) = answers(capsys)
    assert [(m["index"], m["time"]) for m in answer["memory"]] == [(6, 1.5), (7, 1.75), (8, 2.0)]  # 4 fps, 3 frames
    # an option overrides the recorded value, one by one
    assert main(["stream", str(demo_mp4), "--model", str(model), "--ask", "2:Where?", "--json", "--show-memory",
                 "--max-new-tokens", "2", "--fps", "1", "--window", "2"]) == 0
    (answer,) = answers(capsys)
    assert [(m["index"], m["time"]) for m in answer["memory"]] == [(1, 1.0), (2, 2.0)]
    config["memory"] = {"mode": "window", "window": 0}
    (model / "config.json").write_text(json.dumps(config))
    assert main(["stream", str(demo_mp4), "--model", str(model), "--ask", "2:Where?"]) == 2
    assert "memory: --window 0: must be >= 1 (window: frames held)" in capsys.readouterr().err


def test_the_bundled_model_records_its_training_memory_and_rate():
    from videochat_online.model.configuration import VideoChatOnlineConfig

    bundled = PACKAGE.parent / "models" / "videochat-online-synthetic-tiny"
    config = VideoChatOnlineConfig.from_json_file(str(bundled / "config.json"))
    run = json.loads((bundled / "run_config.json").read_text())
    assert config.fps == run["data"]["fps"] == 1.0
    memory = MemorySettings.from_dict(config.memory)
    assert memory.mode == "pyramid" and memory.capacities == (2, 2, 12) and memory.intervals == (8, 4, 1)
    assert memory.build(config.grid_size).grid_sizes == (8, 4, 2)


def test_a_published_layout_checkpoint_gets_the_published_defaults(tiny_dir):
    from videochat_online.model.checkpoint import read_config

    config, layout = read_config(tiny_dir("original"))
    assert layout == "original" and config.fps == 1.0
    assert config.memory is None and resolve_memory({}, config) == MemorySettings()  # the published pyramid


