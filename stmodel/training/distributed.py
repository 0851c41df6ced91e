"""Multi-host start-up through jax.distributed, from flags or the environment."""

from __future__ import annotations

import os

import jax

from stmodel.errors import UserError


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-process run, or do nothing for a single process.

    Flags win over the environment variables STMODEL_COORDINATOR,
    STMODEL_NUM_PROCESSES and STMODEL_PROCESS_ID. With none given, JAX's own
    auto-detection runs where it applies (TPU pods, SLURM, Open MPI) when
    STMODEL_DISTRIBUTED=auto is set; otherwise the run is single-process.
    """
    coordinator = coordinator or os.environ.get("STMODEL_COORDINATOR")
    num_processes = num_processes or _env_int("STMODEL_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("STMODEL_PROCESS_ID")
    if coordinator or num_processes:
        if not (coordinator and num_processes and process_id is not None):
            raise UserError(
                "multi-host runs need all of --coordinator HOST:PORT, "
                "--num-processes N and --process-id I (or STMODEL_COORDINATOR, "
                "STMODEL_NUM_PROCESSES, STMODEL_PROCESS_ID)"
            )
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
        )
    elif os.environ.get("STMODEL_DISTRIBUTED") == "auto":
        jax.distributed.initialize()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None
