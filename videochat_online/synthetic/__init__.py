"""A synthetic online-video world: scenes of simple objects, OVBench-style questions, training data.

`world.py` draws scenes (an object appears, changes colour, moves, may leave), `questions.py` asks
about them at moments of the stream, `build.py` writes a benchmark split and training sets to disk,
`recipe.py` trains a tiny VideoChat-Online on them and evaluates it (`shell/synthetic/`).
"""
