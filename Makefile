# make test                 set up .venv (first time) and run the test suite (what CI runs)
# make demo                 set up .venv and watch a video as a stream, answering questions at their times
#   MODEL=path/or/hub-id    checkpoint to use (default: a tiny random checkpoint written to checkpoints/)
#   VIDEO=path.mp4          video file or frame folder (default: a generated demo video)
#   ASK='--ask "4:Where is the ball?" --ask "9:What happens next?"'
# make chat                 ask about an image (IMAGE=path.jpg QUESTION="...")
VENV ?= .venv
PY := $(VENV)/bin/python
TINY := checkpoints/tiny-phi3
MODEL ?= $(TINY)
IMAGE ?= checkpoints/demo.png
QUESTION ?= What do you see in this image?
VIDEO ?= checkpoints/demo.mp4
ASK ?= --ask "4:Where is the ball?" --ask "9.5:What will happen next?"
TINY_NOTE = @$(if $(filter $(TINY),$(MODEL)),echo "(model: a tiny randomly initialised checkpoint, so expect noise; MODEL=... picks a real one)")

.PHONY: setup test demo chat
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml lmms-eval-ovbench/pyproject.toml requirements.txt scripts/setup_env.sh
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest -q

$(TINY)/config.json: | setup
	$(PY) -m videochat_online.tools.make_tiny $(TINY)

checkpoints/demo.png checkpoints/demo.mp4: | setup
	$(PY) -m videochat_online.tools.demo_media $@

demo: setup $(if $(filter $(TINY),$(MODEL)),$(TINY)/config.json) $(if $(filter checkpoints/demo.mp4,$(VIDEO)),checkpoints/demo.mp4)
	$(TINY_NOTE)
	$(VENV)/bin/videochat-online stream "$(VIDEO)" --model "$(MODEL)" $(ASK) --show-memory

chat: setup $(if $(filter $(TINY),$(MODEL)),$(TINY)/config.json) $(if $(filter checkpoints/demo.png,$(IMAGE)),checkpoints/demo.png)
	$(TINY_NOTE)
	$(VENV)/bin/videochat-online chat --model "$(MODEL)" --image "$(IMAGE)" "$(QUESTION)"
