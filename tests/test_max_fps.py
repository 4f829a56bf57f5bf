"""benchmarks/max_fps.py: the rate search, and one short run of the bundled model on the CPU (figures printed and
written, not asserted: speed is measured, never tested)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "max_fps.py"


def load_script():
    spec = importlib.util.spec_from_file_location("max_fps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_search_doubles_then_bisects_to_the_highest_rate_kept_up_with():
    tried = []

    def run(rate):  # a model that keeps up with 100 frames/s and no more
        tried.append(rate)
        return {"offered_fps": rate, "dropped": int(rate > 100)}

    best, trials = load_script().search(run, start=1.0, most=1024.0, steps=4)
    assert tried == [1, 2, 4, 8, 16, 32, 64, 128, 96, 112, 104, 100]
    assert best["offered_fps"] == 100 and len(trials) == len(tried)
    best, _ = load_script().search(lambda r: {"offered_fps": r, "dropped": 0}, 1.0, 8.0, 4)
    assert best["offered_fps"] == 8  # kept up with every rate tried: the highest


def test_the_bundled_model_runs_and_writes_its_figures(tmp_path):
    out = tmp_path / "max_fps.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--window", "0.5", "--ask-every", "0.25", "--most", "8",
                             "--steps", "1", "--max-new-tokens", "2", "--json", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["model"] == "models/videochat-online-synthetic-tiny" and figures["trials"]
    if figures["max_fps"] is not None:  # a loaded machine may keep up with no rate; the line says which
        assert f"kept up with {figures['max_fps']:g} frames/s" in result.stdout
        assert figures["at_max"]["ttft_median_s"] > 0 and figures["at_max"]["questions"] == 2
    else:
        assert "kept up with no rate" in result.stdout
