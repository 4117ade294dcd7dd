# sfli on Ray cluster nodes: Ray's own image of the pinned version with the project installed into it.
#   docker build -t sfli:cpu .                                   # CPU nodes
#   docker build -t sfli:gpu --build-arg VARIANT=-gpu .          # GPU nodes (CUDA build of torch)
ARG RAY_VERSION=2.60.0
ARG PYTHON=py311
ARG VARIANT=-cpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON}${VARIANT}
ARG VARIANT=-cpu

WORKDIR /home/ray/sfli
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users sfli_core ./sfli_core
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users analysis ./analysis
COPY --chown=ray:users studies ./studies
COPY --chown=ray:users configs ./configs

# CPU image: the CPU wheel of torch first, so that the project's torch requirement pulls no CUDA packages.
RUN if [ "$VARIANT" = "-cpu" ]; then \
        pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu ; \
    else \
        pip install --no-cache-dir torch==2.13.0 ; \
    fi \
 && pip install --no-cache-dir -e .

ENV MLFLOW_DISABLE_TELEMETRY=true \
    RAY_USAGE_STATS_ENABLED=0
