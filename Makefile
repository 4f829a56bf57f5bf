# make test                 set up .venv (first time) and run the test suite (what CI runs)
# make demo                 set up .venv and watch a video as a stream, answering questions at their times
#   MODEL=path/or/hub-id    checkpoint to use (default: the bundled tiny model trained on the synthetic world)
#   VIDEO=path.mp4          video file or frame folder (default: a bundled synthetic-world sample)
#   ASK='--ask "4:Where is the ball?" --ask "9:What happens next?"'      FPS=2 (default: the model's trained rate)
# make gradio               the gradio demo on http://127.0.0.1:7860 (gradio_demo.sh: MODEL, DEVICE, HOST, PORT, FPS, MEMORY)
# make chat                 ask about an image (IMAGE=path.jpg QUESTION="...")
# make synthetic            train the tiny model on the synthetic world from scratch and evaluate it (~28 min CPU)
#   BACKBONE=qwen3-vl       ... a tiny Qwen3-VL-architecture model instead (shell/synthetic/tiny-qwen3-vl.yaml)
VENV ?= .venv
PY := $(VENV)/bin/python
BUNDLED := models/videochat-online-synthetic-tiny
MODEL ?= $(BUNDLED)
IMAGE ?= assets/samples/square.png
QUESTION ?= What colour is the square?
VIDEO ?= assets/samples/synth_test_0000.mp4
FPS ?=
ASK ?= --ask "3:Where is the square now?" --ask "11:Where will the square stop?" \
       --ask "12:How long has the square been moving?" \
       --ask "14:What colour was the square before it changed colour?" --ask "30:Is the square still in view?"
BUNDLED_NOTE = @$(if $(filter $(BUNDLED),$(MODEL)),echo "(model: the bundled tiny model, trained only on the synthetic world of coloured shapes: docs/synthetic.md; MODEL=... picks another)")

.PHONY: setup test demo chat gradio synthetic
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml lmms-eval-ovbench/pyproject.toml requirements.txt scripts/setup_env.sh
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(BUNDLED_NOTE)
	$(VENV)/bin/videochat-online stream "$(VIDEO)" --model "$(MODEL)" $(if $(FPS),--fps $(FPS)) $(ASK) --show-memory

chat: setup
	$(BUNDLED_NOTE)
	$(VENV)/bin/videochat-online chat --model "$(MODEL)" --image "$(IMAGE)" "$(QUESTION)"

gradio: setup
	bash gradio_demo.sh

synthetic: setup
	$(if $(BACKBONE),CONFIG=$(CURDIR)/shell/synthetic/tiny-$(BACKBONE).yaml OUTPUT_DIR=runs/synthetic-$(BACKBONE)) bash shell/synthetic/train_tiny.sh
