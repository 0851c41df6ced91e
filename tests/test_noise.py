"""Noise of a stochastic model: a pure function of global identifiers, the same alone, in
any batch and sharded over devices."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stmodel.model.noise import batch_noise, member_noise

REPO = Path(__file__).resolve().parent.parent
SEED, STEP, ROLLOUT_STEP, DIM = 7, 123, 1, 32


def test_each_identifier_changes_the_noise_and_repeats_reproduce_it():
    base = np.asarray(member_noise(SEED, STEP, 5, 0, ROLLOUT_STEP, DIM))
    assert base.shape == (DIM,) and base.dtype == np.float32
    np.testing.assert_array_equal(base, member_noise(SEED, STEP, 5, 0, ROLLOUT_STEP, DIM))
    for changed in (
        (SEED + 1, STEP, 5, 0, ROLLOUT_STEP),
        (SEED, STEP + 1, 5, 0, ROLLOUT_STEP),
        (SEED, STEP, 6, 0, ROLLOUT_STEP),
        (SEED, STEP, 5, 1, ROLLOUT_STEP),
        (SEED, STEP, 5, 0, ROLLOUT_STEP + 1),
    ):
        other = np.asarray(member_noise(*changed, DIM))
        assert not np.array_equal(other, base)
        assert np.corrcoef(other, base)[0, 1] < 0.6


def test_a_row_is_the_same_alone_and_in_any_batch():
    alone = np.stack(
        [np.asarray(member_noise(SEED, STEP, 9, m, ROLLOUT_STEP, DIM)) for m in range(4)]
    )
    assert len({tuple(row) for row in alone}) == 4  # members differ
    for batch in (1, 3, 8):
        samples = np.concatenate([[9], np.arange(100, 100 + batch - 1)])
        members = np.arange(batch) % 4
        members[0] = 2
        rows = np.asarray(
            jax.jit(batch_noise, static_argnums=5)(SEED, STEP, samples, members, ROLLOUT_STEP, DIM)
        )
        assert rows.shape == (batch, DIM)
        np.testing.assert_array_equal(rows[0], alone[2])
    # Each sample repeated per member: members broadcast against samples.
    samples = jnp.repeat(jnp.array([9, 10]), 4)
    members = jnp.tile(jnp.arange(4), 2)
    grid = np.asarray(batch_noise(SEED, STEP, samples, members, ROLLOUT_STEP, DIM))
    np.testing.assert_array_equal(grid[:4], alone)


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from stmodel.model.noise import batch_noise

    seed, step, rollout_step, dim = (int(v) for v in sys.argv[1:5])
    assert jax.device_count() == 8
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, P("data"))
    samples = jax.device_put(jnp.repeat(jnp.arange(40, 48), 2), rows)  # 2 members each
    members = jax.device_put(jnp.tile(jnp.arange(2), 8), rows)
    noise = jax.jit(
        lambda s, m: batch_noise(seed, step, s, m, rollout_step, dim),
        out_shardings=NamedSharding(mesh, P("data", None)),
    )(samples, members)
    per_device = [np.asarray(s.data).tolist() for s in noise.addressable_shards]
    print(json.dumps({"noise": np.asarray(noise).tolist(), "per_device": per_device}))
    """
)


def test_sharded_over_eight_devices_equals_unsharded_and_differs_across_devices():
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
    )
    result = subprocess.run(
        [sys.executable, "-c", SHARDED, *map(str, (SEED, STEP, ROLLOUT_STEP, DIM))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    sharded = np.asarray(out["noise"], np.float32)
    unsharded = np.asarray(
        batch_noise(
            SEED, STEP, np.repeat(np.arange(40, 48), 2), np.tile(np.arange(2), 8), ROLLOUT_STEP, DIM
        )
    )
    np.testing.assert_array_equal(sharded, unsharded)
    shards = [np.asarray(s, np.float32) for s in out["per_device"]]
    assert len(shards) == 8 and all(s.shape == (2, DIM) for s in shards)
    flat = {tuple(row) for s in shards for row in s}
    assert len(flat) == 16  # every row, on every device, its own vector


def test_the_training_step_key_gives_the_noise_of_the_global_identifiers():
    """The loop hands the loss fold_in(key(seed), step); the ensemble method's noise from it
    is member_noise of (seed, step, sample, member, rollout_step)."""
    from stmodel.model.noise import batch_noise_in_step, member_noise

    seed, step = 3, 17
    step_key = jax.random.fold_in(jax.random.key(seed), step)
    samples, members = np.repeat(np.arange(3), 2), np.tile(np.arange(2), 3)
    noise = batch_noise_in_step(step_key, samples, members, 1, 5)  # [6, 5]
    for row, (sample, member) in enumerate(zip(samples, members)):
        np.testing.assert_array_equal(noise[row], member_noise(seed, step, sample, member, 1, 5))
