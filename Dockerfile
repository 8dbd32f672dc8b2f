# cifar-workbook on the official PyTorch runtime image (README, "Docker").
#
# The base brings Python, CUDA, cuDNN, torch and torchvision; this file adds the
# workbook and its other dependencies with pip and keeps the base's torch.
# pytorch/pytorch 2.14.1 + CUDA 13.0 (torch 2.14.1+cu130, the build the project's
# CI tests with) needs an NVIDIA driver >= 580. With an older driver build on
#   --build-arg BASE_IMAGE=pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime
# Images from 2.10 on have Ubuntu 24.04's system python3; older ones have conda's
# in /opt/conda/bin. Both work here (the base needs Python >= 3.10).
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

# The container's user. Mounted folders must be writable by this uid: build with
# --build-arg WORKBOOK_UID="$(id -u)" when yours is not 1000.
ARG WORKBOOK_UID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# PIP_BREAK_SYSTEM_PACKAGES: the image is the environment, and Ubuntu's python3
# refuses system-wide installs otherwise (PEP 668). PIP_CONSTRAINT keeps the
# base's torch and torchvision, for this build and for any later pip install.
# CUBLAS_WORKSPACE_CONFIG lets torch.use_deterministic_algorithms(True) run cuBLAS.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/etc/cifar-workbook/base-constraints.txt \
    PYTHONUNBUFFERED=1 \
    CUBLAS_WORKSPACE_CONFIG=:4096:8

# A uid taken in the base (Ubuntu 24.04 has `ubuntu`, uid 1000) is handed over to
# `workbook`, so that the uid stays the one the README asks for.
RUN if [ "${WORKBOOK_UID}" = 0 ]; then \
        echo "WORKBOOK_UID must not be 0: the workbook runs as a non-root user" >&2; exit 1; \
    fi \
    && existing="$(getent passwd "${WORKBOOK_UID}" | cut -d: -f1)" \
    && if [ -n "${existing}" ]; then userdel "${existing}"; fi \
    && useradd --no-log-init --create-home --user-group --uid "${WORKBOOK_UID}" --shell /bin/bash workbook \
    && mkdir -p /etc/cifar-workbook /workbook/data /workbook/results /workbook/figures \
        /workbook/executed /workbook/checkpoints \
    && chown -R workbook:workbook /workbook \
    && python3 -c "import importlib.metadata as md; print(*(f'{name}=={md.version(name)}' for name in ('torch', 'torchvision')), sep='\n')" \
        > "${PIP_CONSTRAINT}" \
    && cat "${PIP_CONSTRAINT}"

WORKDIR /workbook

# Dependencies first, from pyproject.toml alone, so that editing the workbook
# doesn't reinstall them.
COPY pyproject.toml ./
RUN python3 -c "import sys, importlib; toml = importlib.import_module('tomllib' if sys.version_info >= (3, 11) else 'pip._vendor.tomli'); print(*toml.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && python3 -m pip install --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Editable, as with `make install`: the package finds the notebooks, params and
# output folders from its own location (cifar_helpers/core/paths.py).
COPY --chown=workbook:workbook . ./
RUN python3 -m pip install --no-deps --editable . \
    && python3 -m cifar_helpers.workbook.jupyter_setup \
    && python3 -c "import cifar_helpers, torch; print('cifar_helpers from', cifar_helpers.__file__, '- torch', torch.__version__)"

# Numeric, so that the host (and runAsNonRoot) can tell it is not root.
USER ${WORKBOOK_UID}

EXPOSE 8888

# `make run`'s equivalent: papermill executes notebooks 01-06 into executed/.
CMD ["python3", "-m", "cifar_helpers.workbook.run_all"]
