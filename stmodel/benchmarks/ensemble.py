"""`stmodel bench ensemble`: what an ensemble costs, measured side by side in one run.

* inference: member-steps per second of a stochastic network (ModelConfig.noise_dim > 0)
  stepping a batch of members, its noise given, against the same network without noise
  (noise_dim 0) at the same batch: the target is at most 1.1 x a deterministic step;
* training: seconds per sample of one jitted gradient step (value_and_grad of the loss) of
  the ensemble CRPS method with M members against the deterministic method (MSE), both
  the training methods of stmodel.training.methods with the task's loss arrays, at the
  same batch: the target is at most M x;
* the ensemble against the dynamical core: M members over `days` from perturbed initial
  states by the dinosaur core at the built-in planet's resolution and time step, and by
  the stochastic network (6 h steps, each member's noise drawn at every step as forecasts
  draw it).

Parameters are random (speed does not depend on them); the data's shape is the built-in
planet's. Compile time is excluded (one untimed call first); times are medians of
`repeats`, the two sides of each ratio timed by turns; the figures are ratios of this
run's timings, never of stored numbers.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable

import jax
import numpy as np

from stmodel.benchmarks.ensemble_training import (
    NOISE_DIM,
    train_config,
    training_step_run,
)
from stmodel.benchmarks.forecast import DEFAULT_DATA_SHAPE, dycore_run, unit_stats
from stmodel.benchmarks.model import side_by_side
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.canonical import WEATHERBENCH_LEVELS
from stmodel.data.layout import VariableLayout
from stmodel.data.pipeline import ENCODINGS
from stmodel.forecasting.ensemble import (
    DEFAULT_PERTURBATION,
    Ensemble,
    noise_dim,
    perturb_initial_states,
    step_noise,
)
from stmodel.forecasting.forecast import checked_stepper
from stmodel.simulation.levels import PRESSURE_LEVEL_FIELDS, SURFACE_FIELDS
from stmodel.simulation.presets import PRESETS as SIMULATION_PRESETS
from stmodel.training.config import TrainConfig
from stmodel.training.forecasting_task import model_config_for

logger = logging.getLogger(__name__)

INFERENCE_STEPS = 4  # one day of 6 h steps per timed inference run
MEMBER_STEP_TARGET = 1.1  # a member-step costs at most 1.1 deterministic steps
# The built-in planet's data: its variables and levels, on the 5.625 deg grid.
LAYOUT = VariableLayout(PRESSURE_LEVEL_FIELDS, WEATHERBENCH_LEVELS, SURFACE_FIELDS, ENCODINGS)
PLANET = SIMULATION_PRESETS["default"]
INIT_TIME = np.datetime64("2001-01-01T00", "ns")  # names the members' noise


def random_model(config: TrainConfig) -> CheckpointModel:
    """The config's network sized to the built-in planet's data, random parameters from the
    config's seed, statistics of ones and zero constants."""
    n_lat, n_lon = DEFAULT_DATA_SHAPE["grid"]
    lat = -90 + 180 * (np.arange(n_lat) + 0.5) / n_lat  # cell-centred, no poles
    lon = 360 * np.arange(n_lon) / n_lon
    model_config = model_config_for(config, LAYOUT, (len(lat), len(lon)))
    return CheckpointModel.initialise(
        model_config,
        LAYOUT,
        unit_stats(model_config),
        np.zeros((len(lat), len(lon), len(LAYOUT.constants)), np.float32),
        lat=lat,
        lon=lon,
        dt_hours=config.dt_hours,
        seed=config.seed,
        train_config=config.to_dict(),
    )


def zero_states(model: CheckpointModel, batch: int) -> tuple[np.ndarray, np.ndarray]:
    c = model.model_config
    upper = np.zeros((batch, c.n_levels, *c.grid, c.n_upper_vars), np.float32)
    return upper, np.zeros((batch, *c.grid, c.n_surface_vars), np.float32)


def steps_run(model: CheckpointModel, stepper, upper, surface, n_steps: int, noise) -> Callable:
    """A call of `n_steps` steps of the batch by `stepper` (model's
    stmodel.forecasting.forecast.checked_stepper), compiled by one untimed step;
    `noise(lead)`: the step's noise arguments (() for a deterministic model)."""

    def forecast():
        u, s = upper, surface
        for k in range(1, n_steps + 1):
            u, s, _ = stepper(model.params, u, s, *noise(k * model.dt_hours))
        return u, s

    jax.block_until_ready(stepper(model.params, upper, surface, *noise(model.dt_hours)))
    return forecast


def inference_run(model: CheckpointModel, stepper, batch: int) -> Callable:
    """INFERENCE_STEPS steps of `batch` states, the noise given (drawn once, outside the
    timing): the network's cost."""
    shape = (batch, noise_dim(model))
    given = (jax.random.normal(jax.random.key(0), shape),) if noise_dim(model) else ()
    return steps_run(model, stepper, *zero_states(model, batch), INFERENCE_STEPS, lambda _: given)


def learned_ensemble_run(model: CheckpointModel, stepper, members: int, days: int) -> Callable:
    """`members` members over `days` in one batch: perturbed initial states, each member's
    noise drawn at every step (forecast_noise), as a forecast does."""
    ensemble = Ensemble(members=members, perturb=DEFAULT_PERTURBATION)
    times, member = np.full(members, INIT_TIME), np.arange(members)
    upper, surface = perturb_initial_states(
        *zero_states(model, members), times, member, ensemble, model
    )

    def noise(lead: int):
        return step_noise(model, ensemble.seed, times, member, lead)

    return steps_run(model, stepper, upper, surface, days * 24 // model.dt_hours, noise)


def benchmark_ensemble(
    preset: str = "small", members: int = 2, batch: int = 4, days: int = 10, repeats: int = 3
) -> dict:
    """The figures of the module's docstring, a JSON-ready dict."""
    configs = {
        kind: train_config(preset, kind, members, batch)
        for kind in ("deterministic", "ensemble_crps")
    }
    models = {kind: random_model(config) for kind, config in configs.items()}
    stochastic, deterministic = models["ensemble_crps"], models["deterministic"]
    logger.info(
        "bench ensemble: %d steps of %d states, with and without noise", INFERENCE_STEPS, batch
    )
    # One stepper a model, so that --batch equal to --members compiles its steps once.
    steppers = {kind: checked_stepper(model) for kind, model in models.items()}
    inference = side_by_side(
        {kind: inference_run(model, steppers[kind], batch) for kind, model in models.items()},
        repeats,
    )
    runs = {}
    for kind, config in configs.items():
        logger.info("bench ensemble: compiling a gradient step of the %s method", kind)
        runs[kind] = training_step_run(config, models[kind])
    logger.info("bench ensemble: timing the gradient steps, batch %d", batch)
    training = {kind: s / batch for kind, s in side_by_side(runs, repeats).items()}
    logger.info("bench ensemble: %d members over %d days, learned and dycore", members, days)
    planet = (PLANET.truncation, PLANET.sigma_layers, PLANET.time_step_minutes)
    ensembles = side_by_side(
        {
            "learned": learned_ensemble_run(stochastic, steppers["ensemble_crps"], members, days),
            "dycore": dycore_run(days, *planet, members=members),
        },
        repeats,
    )
    learned, dycore = ensembles["learned"], ensembles["dycore"]
    step_cost = inference["ensemble_crps"] / inference["deterministic"]
    training_cost = training["ensemble_crps"] / training["deterministic"]
    return {
        "benchmark": "ensemble",
        "model_preset": preset,
        "grid": list(stochastic.model_config.grid),
        "noise_dim": NOISE_DIM,
        "parameters_stochastic": stochastic.n_parameters,
        "parameters_deterministic": deterministic.n_parameters,
        "batch": batch,
        "members": members,
        "days": days,
        "repeats": repeats,
        "inference_steps_timed": INFERENCE_STEPS,
        "member_step_per_s": batch * INFERENCE_STEPS / inference["ensemble_crps"],
        "deterministic_step_per_s": batch * INFERENCE_STEPS / inference["deterministic"],
        "member_step_cost_vs_deterministic": step_cost,
        "training_s_per_sample_deterministic": training["deterministic"],
        "training_s_per_sample_ensemble_crps": training["ensemble_crps"],
        "training_cost_per_sample_vs_deterministic": training_cost,
        "learned_steps_per_member": days * 24 // stochastic.dt_hours,
        "learned_ensemble_s": learned,
        "dycore": f"dinosaur Held-Suarez T{PLANET.truncation}, {PLANET.sigma_layers} sigma "
        f"levels, {PLANET.time_step_minutes:g} min step (the built-in planet's), members vmapped",
        "dycore_ensemble_s": dycore,
        "dycore_over_learned": dycore / learned,
        "targets": {
            "member_step_cost_vs_deterministic_at_most": MEMBER_STEP_TARGET,
            "training_cost_per_sample_vs_deterministic_at_most": members,
        },
        "meets_targets": {
            "member_step_cost_vs_deterministic": step_cost <= MEMBER_STEP_TARGET,
            "training_cost_per_sample_vs_deterministic": training_cost <= members,
        },
        "device": jax.devices()[0].platform,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()),
        "note": "random parameters; compile time excluded; medians of repeats. Inference: "
        "forecast steps of `batch` states, the noise given (deterministic: the same network "
        "with noise_dim 0). Training: value_and_grad of the loss, 1 rollout step, the CRPS "
        f"method's members folded into the batch. Ensemble: {stochastic.dt_hours} h steps, "
        f"perturbed initial states ({DEFAULT_PERTURBATION:g} x diff_std; dycore: each member's own "
        "surface-pressure bump), each member's noise drawn per step",
    }
