"""sfli_core: ε-rank, structured first-layer initialisation (SFLI), models, tasks and an instrumented trainer.

This package is framework-free on purpose: it imports no Ray, no MLflow and no CLI code, so that the same
functions run in a notebook, in a unit test and inside a Ray Tune trial.
"""

__version__ = "0.1.0"
