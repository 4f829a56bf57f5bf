"""Plug-ins from outside the package: a memory policy, a protocol and a benchmark with its own annotation format,
each one file in tests/ named by path (`module:Class`), run through the CLI and (policy, benchmark) the lmms-eval
model; installed packages' entry points; and checkpoints that record only their own policy."""

import json
import shutil
import sys

import pytest

from videochat_online.cli import main
from videochat_online.eval import ovo_bench
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.presets import PROTOCOLS
from videochat_online.memory import POLICIES, MemorySettings
from videochat_online.registry import Registry
from videochat_online.settings import SettingsError
from videochat_online.tools.demo_media import write_video


def answers(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.fixture
def fresh():
    """Each plug-in module imported anew by the test, and forgotten after it (the registries as before)."""
    before = {r: (dict(r.entries), dict(r.aliases)) for r in (POLICIES, PROTOCOLS, BENCHMARKS) if r.names()}
    yield
    for registry, (entries, aliases) in before.items():
        registry.entries, registry.aliases = entries, aliases
    for name in ("toy_memory", "toy_protocol", "toy_benchmark"):
        sys.modules.pop(name, None)


class Request:
    """An lmms-eval generate_until request, as the model reads it."""

    def __init__(self, doc_id, task, doc_to_visual):
        self.args = ("(not used for clips)", {"max_new_tokens": 8}, doc_to_visual, doc_id, task, "test")


def test_a_policy_from_its_file_runs_everywhere(fresh, tiny_dir, demo_mp4, ovbench_sample, tmp_path, capsys):
    tiny = tiny_dir()
    assert "toy" not in POLICIES
    path = "toy_memory:StrideMemory"
    # videochat-online stream: --memory by path, and the option the file declares
    assert main(["stream", str(demo_mp4), "--model", str(tiny), "--fps", "2", "--memory", path, "--toy-stride", "3",
                 "--ask", "6:What is it?", "--json", "--show-memory", "--max-new-tokens", "2"]) == 0
    (answer,) = answers(capsys)
    assert [m["index"] for m in answer["memory"]] == [3, 6, 9, 12]  # 13 frames seen: every 3rd, the last four
    assert main(["stream", str(demo_mp4), "--model", str(tiny), "--memory", path, "--toy-stride", "0",
                 "--ask", "1:x"]) == 2
    assert "--toy-stride 0: must be >= 1" in capsys.readouterr().err

    # videochat-online eval: the stream protocol with the toy memory
    anno, roots = ovbench_sample("toy", lambda entries: entries[:2])
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny), "--anno-dir", str(anno), "--output-dir", str(out), "--subsets", "coin",
                 "--data-root", f"coin={roots['coin']}", "--preset", "project", "--fps", "1", "--memory", path,
                 "--toy-stride", "2", "--max-new-tokens", "2"]) == 0
    records = lines(out)
    assert records and all(f[0] % 2 == 0 for r in records for f in r["frames"])
    assert all(len(r["frames"]) <= 4 for r in records)
    settings = json.loads((out / "run_settings.json").read_text())
    assert settings["mode"] == "toy" and settings["toy_stride"] == 2 and "window" not in settings

    # the lmms-eval model: the policy and its option as model_args, an OVBench clip watched with it
    from lmms_eval_ovbench.model import VideoChatOnline

    lmms = VideoChatOnline(pretrained=str(tiny), memory=path, toy_stride="2", fps=1, preset="project",
                           max_new_tokens=2)
    assert type(lmms.memory.build(8)).__name__ == "StrideMemory" and lmms.memory.toy_stride == 2
    doc = json.loads((anno / "coin.json").read_text())[0]
    clip = {"benchmark": "ovbench", "video": str(roots["coin"] / doc["video"]), "question": doc, "subset": "coin",
            "position": 0}
    lmms.task_dict = {"t": {"test": [doc]}}
    (reply,) = lmms.generate_until([Request(0, "t", lambda d: [clip])])
    assert reply == records[0]["reply"]  # the same question, memory and rate as the CLI's coin/0

    # the live-stream backend: the policy is a mode beside the built-in ones
    from videochat_online.data.video import open_video
    from videochat_online.live import LiveStream

    now = [0.0]
    live = LiveStream(lmms.engine, MemorySettings(path, toy_stride=3), fps=2, clock=lambda: now[0])
    live.open(open_video(demo_mp4))
    now[0] = 6.0
    live.tick()
    view = live.memory_view()
    assert view.mode == "toy" and [f.index for f in view.levels[0]] == [3, 6, 9, 12]
    assert {"pyramid", "window", "uniform", "recent", "toy"} == set(live.sessions)


def test_a_protocol_from_its_file_runs_on_ovbench_and_ovo_bench(fresh, tiny_dir, ovbench_sample, tmp_path):
    from test_streaming_benchmarks import OVO_MC

    tiny = tiny_dir()
    anno, roots = ovbench_sample("toy-protocol", lambda entries: entries[:2])
    out = tmp_path / "ovbench"
    assert main(["eval", "--model", str(tiny), "--anno-dir", str(anno), "--output-dir", str(out), "--subsets", "coin",
                 "--data-root", f"coin={roots['coin']}", "--preset", "project", "--fps", "2", "--protocol",
                 "toy_protocol:LastSecond", "--max-new-tokens", "2"]) == 0
    for r in lines(out):  # the frames of the second before the question, a fresh memory each
        assert r["protocol"] == "last-second" and r["frames"]
        assert all(r["time"] - 1 - 1e-6 <= t <= r["time"] + 1e-6 for _, t, _ in r["frames"])

    ovo = tmp_path / "ovo"
    (ovo / "videos").mkdir(parents=True)
    (ovo / ovo_bench.FILE).write_text(json.dumps([{**OVO_MC, "video": "a.mp4", "realtime": 4.0}]))
    write_video(ovo / "videos" / "a.mp4", seconds=6, fps=4, width=64, height=48)
    out = tmp_path / "ovo-out"
    assert main(["eval", "--benchmark", "ovo-bench", "--model", str(tiny), "--anno-dir", str(ovo), "--output-dir",
                 str(out), "--data-root", f"videos={ovo / 'videos'}", "--fps", "2", "--protocol",
                 "toy_protocol:LastSecond", "--max-new-tokens", "2"]) == 0
    (r,) = lines(out)
    assert [t for _, t, _ in r["frames"]] == [3.0, 3.5, 4.0]


def test_a_benchmark_of_its_own_format_runs_in_eval_and_lmms_eval(fresh, tiny_dir, demo_mp4, tmp_path):
    tiny = tiny_dir()
    anno = tmp_path / "anno"
    (anno / "videos").mkdir(parents=True)
    shutil.copy(demo_mp4, anno / "videos" / "ball.mp4")
    rows = [{"clip": "ball.mp4", "at": 2.0, "ask": "Is there a ball?", "truth": "yes"},
            {"clip": "ball.mp4", "at": 5.5, "ask": "Is there a cat?", "truth": "no"}]
    (anno / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "toy_benchmark:YesNo", "--model", str(tiny), "--anno-dir", str(anno),
                 "--data-root", f"videos={anno / 'videos'}", "--output-dir", str(out), "--fps", "2",
                 "--max-new-tokens", "3"]) == 0
    records = lines(out)
    assert [r["id"] for r in records] == ["all/0", "all/1"] and all(r["status"] == "ok" for r in records)
    assert all(max(t for _, t, _ in r["frames"]) <= r["time"] for r in records)
    assert (out / "results.md").read_text().startswith("# Toy yes/no")
    assert json.loads((out / "results.json").read_text())["overall"]["total"] == 2

    from lmms_eval_ovbench.model import VideoChatOnline

    lmms = VideoChatOnline(pretrained=str(tiny), fps=2, max_new_tokens=3)
    clips = [{"benchmark": "toy_benchmark:YesNo", "video": str(anno / "videos" / "ball.mp4"), "qid": f"all/{i}",
              "row": row} for i, row in enumerate(rows)]
    lmms.task_dict = {"toy": {"test": clips}}
    replies = lmms.generate_until([Request(i, "toy", lambda doc: [doc]) for i in range(2)])
    assert replies == [r["reply"] for r in records]


def test_installed_packages_register_through_entry_points(tmp_path, monkeypatch):
    dist = tmp_path / "toy_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[videochat_online.protocols]\nlast-second = toy_protocol:LastSecond\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("protocol", "--protocol", "videochat_online.protocols")
    assert registry.get("last-second").__name__ == "LastSecond" and "last-second" in registry.names()
    with pytest.raises(SettingsError, match="--protocol nope: use one of last-second, or a package.module:Class"):
        registry.get("nope")
    with pytest.raises(SettingsError, match="cannot load that protocol"):
        registry.get("no_such_module:Thing")


def test_a_checkpoint_records_only_its_policy(fresh, tiny_dir, demo_mp4, tmp_path, capsys):
    """Saved while the toy policy was registered, in pyramid mode: it loads after the policy is gone (and a config
    written by an older version, with every policy's options, loads too, leaving the unknown ones out)."""
    MemorySettings("toy_memory:StrideMemory")  # registered
    recorded = MemorySettings(capacities=(2, 2, 6)).to_dict()
    assert set(recorded) == {"mode", "capacities", "grid_sizes", "intervals", "full_cascade"}
    POLICIES.unregister("toy")
    model = tmp_path / "model"
    shutil.copytree(tiny_dir(), model)
    config = json.loads((model / "config.json").read_text())
    for memory in (recorded, {**recorded, "window": 32, "toy_stride": 2}):
        (model / "config.json").write_text(json.dumps({**config, "memory": memory}))
        assert main(["stream", str(demo_mp4), "--model", str(model), "--ask", "1:Where?", "--json",
                     "--max-new-tokens", "2"]) == 0
        assert len(answers(capsys)) == 1
    (model / "config.json").write_text(json.dumps({**config, "memory": {"mode": "toy", "toy_stride": 2}}))
    assert main(["stream", str(demo_mp4), "--model", str(model), "--ask", "1:Where?"]) == 2
    assert "--memory toy: use one of pyramid" in capsys.readouterr().err
