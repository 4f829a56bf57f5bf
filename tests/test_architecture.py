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




# --------------------------------------------------------------------------------------------------
# Dispatch by registries, each default stated once
# --------------------------------------------------------------------------------------------------
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE.parent / "lmms-eval-ovbench").rglob("*.py")) + \
    [PACKAGE.parent / "gradio_demo.py"]
# A comparison with one of these words that is not about a registered plug-in: a training set's `sampling: stream`
# (a meta-file value, docs/training.md).
NOT_A_PLUG_IN = {("videochat_online/train/dataset.py", "stream"), ("videochat_online/train/sampling.py", "stream"),
                 ("videochat_online/cli.py", "stream"),  # the command's name
                 # a score's name (StreamingBench's published counting), a subset's (the synthetic world's)
                 ("videochat_online/eval/streamingbench.py", "published"),
                 ("videochat_online/eval/ovo_bench.py", "realtime"),  # OVO-Bench's category of real-time tasks
                 ("lmms-eval-ovbench/tasks/ovbench/utils.py", "synth")}


def strings(node) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for element in node.elts for s in strings(element)]
    return []


def test_no_comparison_of_plug_in_names_outside_the_registries():
    """Behaviour is never chosen by comparing a protocol's, preset's, memory policy's or benchmark's name: the
    classes say it (a name may be a value, e.g. `replace(mode="window")`, never a test)."""
    from videochat_online.eval.benchmarks import BENCHMARKS
    from videochat_online.eval.presets import PRESETS, PROTOCOLS
    from videochat_online.memory import POLICIES

    names = set(PROTOCOLS.names()) | set(PRESETS) | set(POLICIES.names()) | set(BENCHMARKS.names())
    found = []
    for path in SOURCES:
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                words = [s for side in (node.left, *node.comparators) for s in strings(side)]
            elif isinstance(node, ast.Dict):  # a table keyed by names: {"window": ...}.get(mode)
                words = [s for key in node.keys if key is not None for s in strings(key)]
                words = [] if where == "videochat_online/eval/presets.py" else words  # the presets' own table
            else:
                continue
            found += [f"{where}:{node.lineno}: {w!r}" for w in words if w in names and (where, w) not in NOT_A_PLUG_IN]
    assert found == []


DEFAULTS = {  # a default -> the pattern of its statement (in code, docstrings and comments left out)
    "the 2 fps rate of a model that records none": r"DEFAULT_FPS = 2\.0|(?<!window_)fps\s*(:[^=]+)?=\s*2\.0|or 2\.0",
    "the 1 fps training rate": r"TRAINING_FPS = 1\.0|fps\s*(:[^=]+)?=\s*1\.0\b",
    "the frame batch of 8": r"FRAME_BATCH = 8|batch\w*\s*(:[^=]+)?=\s*8\b",
    "the pyramid's capacities": r"\(2, 2, 12\)",
    "the pyramid's intervals": r"\(8, 4, 1\)",
    "the pyramid's grids (its rule, g halved per level)": r"\(16, 8, 4\)|>> k\) for k in range",
    "the window's 32 frames": r"[\"']window[\"'],\s*32\b|window\w*\s*(:[^=]+)?=\s*32\b(?!\.)",
    "the uniform protocol's 16 frames": r"[\"']uniform_frames[\"'],\s*16\b|(uniform|num_frames)\w*\s*(:[^=]+)?=\s*16\b",
    "the published window's 32 seconds": r"window_seconds\s*=\s*32\.0",
    "the scripted benchmarks' 60 s window": r"window_seconds\s*=\s*60\.0",
    "the published window's 64 frames at most": r"WINDOW_MAX_FRAMES = 64|(window_)?max_frames\s*(:[^=]+)?=\s*64",
    "the default preset": r"DEFAULT_PRESET = \"published\"|preset\w*\s*(:[^=]+)?=\s*\"published\"",
    "the live queue's 16 waiting frames": r"WAITING_FRAMES = 16|(buffer|waiting)\w*\s*(:[^=]+)?=\s*16\b",
    "the default protocol": r"DEFAULT_PROTOCOL = \"stream\"|protocol\w*\s*(:[^=]+)?=\s*\"stream\"",
}


def code_lines(path: Path) -> list[str]:
    """A file's lines of code: docstrings, comments and blank lines left out."""
    text = path.read_text()
    docs = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docs |= set(range(body[0].lineno, body[0].end_lineno + 1))
    return [line.split("  #")[0] for i, line in enumerate(text.splitlines(), 1)
            if i not in docs and line.strip() and not line.strip().startswith("#")]


def test_each_default_is_stated_once():
    import re

    lines = [(path, line) for path in SOURCES for line in code_lines(path)]
    for default, pattern in DEFAULTS.items():
        stated = [f"{path.relative_to(PACKAGE.parent)}: {line.strip()}" for path, line in lines if re.search(pattern, line)]
        assert len(stated) == 1, f"{default}: {stated}"
