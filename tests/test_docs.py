"""The docs say what exists: every link and repository path named in README.md and docs/ is there, and every
command shown accepts the flags it is shown with (checked against its own --help, or a make target, or a
launcher's syntax)."""

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "lmms-eval-ovbench/README.md",
         REPO / "anno_data/README.md"]
TOP = ("videochat_online/", "shell/", "docs/", "tests/", "benchmarks/", "scripts/", "models/", "assets/",
       "anno_data/", "lmms-eval-ovbench/", ".ci/")
ROOT_FILES = ("Makefile", "gradio_demo.py", "gradio_demo.sh", "requirements.txt", "pyproject.toml", "README.md")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"(?m)^#+ (.+)$", page.read_text())}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: link to {target}: no such heading"


def named_paths(text: str) -> set[str]:
    """Repository paths in `code` spans: under a top-level folder, or a file at the root."""
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            word = word.strip(",;:()'\"")
            if word.startswith(TOP) or word in ROOT_FILES:
                if "..." in word or "<" in word or "*" in word or "=" in word:
                    continue
                braces = re.search(r"\{([^}]*)\}", word)
                alternatives = braces.group(1).split(",") if braces else [""]
                found |= {word.replace(braces.group(0), a) if braces else word for a in alternatives}
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_paths_exist(page):
    missing = sorted(p for p in named_paths(page.read_text()) if not (REPO / p.split(":")[0]).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


EXTERNAL = ("ffmpeg",)  # other programs a pipeline may start with: not this project's to check


def shown_commands(text: str) -> list[list[str]]:
    """The commands of the ```bash blocks, continuation lines joined, comments and VAR=value prefixes dropped; each
    part of a pipeline is a command of its own, and other programs' (`EXTERNAL`) are left out."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            all_words = shlex.split(line, comments=True)
            parts = [[]]
            for word in all_words:
                parts.append([]) if word == "|" else parts[-1].append(word)
            for words in parts:
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                    words = words[1:]
                if words and words[0] != "export" and words[0] not in EXTERNAL:
                    commands.append(words)
    return commands


@cache
def help_text(program: tuple[str, ...]) -> str:
    done = subprocess.run([*program, "--help"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, f"{' '.join(program)} --help: {done.stderr[-2000:]}"
    return done.stdout


def check_command(words: list[str]) -> None:
    head = words[0]
    if head == "make":
        targets = set(re.findall(r"(?m)^([a-z]+):", (REPO / "Makefile").read_text()))
        assert words[1] in targets, f"make {words[1]}: no such target"
        return
    if head == "bash":
        script = REPO / words[1]
        assert script.is_file(), f"{words[1]}: no such script"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, f"{words[1]}: not valid bash"
        return
    if head == "videochat-online":
        program, rest = (sys.executable, "-m", "videochat_online.cli", words[1]), words[2:]
    elif head == "python" and words[1:3] == ["-m", "lmms_eval"]:  # the flags without a subcommand are `eval`'s
        program, rest = (sys.executable, "-m", "lmms_eval", "eval"), words[3:]
    elif head == "python" and words[1] == "-m":
        program, rest = (sys.executable, "-m", words[2]), words[3:]
    elif head == "python":
        assert (REPO / words[1]).is_file(), f"{words[1]}: no such file"
        program, rest = (sys.executable, words[1]), words[2:]
    else:
        pytest.fail(f"a command the docs test does not know how to check: {' '.join(words)}")
    shown = help_text(program)
    for word in rest:
        flag = word.split("=")[0]
        if flag.startswith("--"):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown), f"{' '.join(words)}: {flag} is unknown"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_shown_commands_accept_their_flags(page):
    for words in shown_commands(page.read_text()):
        check_command(words)


# The Python examples run as written on a CPU machine, with local stand-ins for the model and media they name.
LOCAL = {"OpenGVLab/VideoChat-Online-4B": str(REPO / "models" / "videochat-online-synthetic-tiny"),
         "cooking.mp4": str(REPO / "assets" / "samples" / "synth_test_0000.mp4"),
         "rtsp://camera.local/stream": str(REPO / "assets" / "samples" / "synth_test_0000.mp4"),
         "a.jpg": str(REPO / "assets" / "samples" / "square.png")}
PYTHON_BLOCKS = [(page, i, block) for page in PAGES
                 for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))]


@pytest.mark.parametrize("page, i, block", PYTHON_BLOCKS,
                         ids=[f"{p.relative_to(REPO)}[{i}]" for p, i, _ in PYTHON_BLOCKS])
def test_python_examples_run_as_written(page, i, block, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code = block
    for name, local in LOCAL.items():
        code = code.replace(f'"{name}"', repr(local))
    exec(compile(code, f"{page.name} python block {i}", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # each example prints what it shows
