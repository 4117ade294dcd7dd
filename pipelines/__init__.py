"""pipelines: study files → Ray Tune (with Optuna search) → MLflow, and the ``sfli`` command line.

The only package that imports Ray and the only one that writes MLflow runs. The CLI imports them lazily,
so that ``sfli train`` and ``sfli validate`` start fast and work without a Ray runtime.
"""
