"""A synthetic online-video world (docs/synthetic.md): scenes (`world.py`), questions at moments of the stream
(`questions.py`), a benchmark split and training sets on disk (`build.py`) and the recipe (`recipe.py`).
"""
