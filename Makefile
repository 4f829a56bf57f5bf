# make test                 set up .venv (first time) and run the test suite (what CI runs)
# make demo                 set up .venv and ask the model about an image
#   MODEL=path/or/hub-id    checkpoint to use (default: a tiny random checkpoint written to checkpoints/)
#   IMAGE=path.jpg          image to ask about (default: a generated demo image)
#   QUESTION="..."          the question
VENV ?= .venv
PY := $(VENV)/bin/python
TINY := checkpoints/tiny-phi3
MODEL ?= $(TINY)
IMAGE ?= checkpoints/demo.png
QUESTION ?= What do you see in this image?

.PHONY: setup test demo
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup_env.sh
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest -q

$(TINY)/config.json: | setup
	$(PY) -m videochat_online.tools.make_tiny $(TINY)

checkpoints/demo.png: | setup
	$(PY) -m videochat_online.tools.demo_media $@

demo: setup $(if $(filter $(TINY),$(MODEL)),$(TINY)/config.json) $(if $(filter checkpoints/demo.png,$(IMAGE)),checkpoints/demo.png)
	@$(if $(filter $(TINY),$(MODEL)),echo "(model: a tiny randomly initialised checkpoint, so expect noise; MODEL=... picks a real one)")
	$(VENV)/bin/videochat-online chat --model "$(MODEL)" --image "$(IMAGE)" "$(QUESTION)"
