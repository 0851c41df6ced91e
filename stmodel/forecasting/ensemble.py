"""Ensemble forecasts: members' noise, perturbed initial conditions and lagged ensembles.

Every random number of an ensemble is a function of (seed, init time, member, lead step)
only, never of how states are batched, so a forecast is the same bit for bit whatever
``--batch``. :func:`forecast_noise` is the one place the network's per-member noise is
derived (a stochastic model, ``ModelConfig.noise_dim > 0``); the perturbations of the
initial states come from the same keys at lead step 0, which no model step arrives at.

Two baselines make ensembles from deterministic models:

* perturbed initial conditions (``--perturb AMPLITUDE``): each member's initial state gets
  Gaussian noise of AMPLITUDE x the model's per-channel ``diff_std`` (the std of one model
  step's change), smoothed over latitude and longitude so it is weather-scale, not grid
  noise;
* a lagged ensemble (``--lagged N``): member k is the deterministic forecast started k lags
  earlier, verified at the same valid times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.errors import UserError
from stmodel.forecasting.forecast_file import ForecastSink, Rows
from stmodel.model.noise import member_key

# Default --perturb: half a model step's typical change. Analysis errors are of the order
# of a few hours' tendency, so this spreads the members visibly within the first day
# without pushing the initial states off the distribution the model was trained on.
DEFAULT_PERTURBATION = 0.5
# Standard deviation, in grid points along latitude and longitude, of the Gaussian the
# perturbations are smoothed with: a few grid lengths, the smallest scales a model step
# resolves, so the noise has no grid-scale component the network never saw.
SMOOTHING_GRID_POINTS = 3.0
EPOCH = np.datetime64("1970-01-01T00:00", "m")


def noise_dim(model: CheckpointModel) -> int:
    """The size of the model's per-member, per-step noise input (ModelConfig.noise_input_dim);
    0 for a deterministic model."""
    return model.model_config.noise_input_dim


def init_time_id(init_time: np.ndarray) -> np.ndarray:
    """[batch] datetime64 -> [batch] uint32 minutes since 1970: the init time itself, not
    its place in the batch, identifies a forecast's noise (valid to the year 10135)."""
    minutes = (np.asarray(init_time, "datetime64[m]") - EPOCH).astype(np.int64)
    return (minutes % 2**32).astype(np.uint32)


def _member_keys(seed: int, init_time: np.ndarray, member: np.ndarray, lead_step) -> jax.Array:
    """[batch] keys of the training noise's function (stmodel.model.noise.member_key), the
    init time in the place of the training step, sample 0, the lead step in the place of
    the rollout step."""
    init_id = init_time_id(init_time)
    member = np.asarray(member, np.uint32)
    lead = np.broadcast_to(np.asarray(lead_step, np.uint32), init_id.shape)
    ids = jnp.asarray(np.stack([init_id, member, lead], axis=-1))  # [batch, 3]
    return jax.vmap(lambda row: member_key(int(seed), row[0], 0, row[1], row[2]))(ids)


def forecast_noise(
    seed: int,
    init_time: np.ndarray,
    member: np.ndarray,
    lead_step: int | np.ndarray,
    noise_dim: int,
) -> jax.Array:
    """[batch, noise_dim] float32 standard normal noise of each (init time, member) state
    for the model step arriving at lead ``lead_step`` hours.

    ``init_time`` [batch] datetime64, ``member`` [batch] ints (0..N-1). A step is named by
    the lead it arrives at: in a hierarchical rollout (24 h + 6 h steps) each lead is
    reached by one step, shared by every lead that passes through it, so every model step
    of every member has its own noise. Lead step 0 is the initial perturbation's."""
    keys = _member_keys(seed, init_time, member, lead_step)
    return jax.vmap(lambda key: jax.random.normal(key, (noise_dim,), jnp.float32))(keys)


def step_noise(
    model: CheckpointModel, seed: int, init_time: np.ndarray, member: np.ndarray, lead_step: int
) -> tuple[jax.Array, ...]:
    """The noise arguments of ``model``'s step arriving at lead ``lead_step`` hours:
    (forecast_noise [batch, noise_dim],) for a stochastic model, () for a deterministic one."""
    if not noise_dim(model):
        return ()
    return (forecast_noise(seed, init_time, member, lead_step, noise_dim(model)),)


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """How members are made: ``members`` per init time, random numbers from ``seed``,
    initial states perturbed by ``perturb`` x diff_std (0: not perturbed)."""

    members: int = 1
    seed: int = 0
    perturb: float = 0.0

    def realization(self, models: Sequence[CheckpointModel]) -> int | None:
        """The size of the output's realization dim, None for a deterministic forecast
        (one unperturbed member of deterministic models), whose layout has none."""
        if self.members > 1 or self.perturb > 0 or any(noise_dim(m) for m in models):
            return self.members
        return None

    def attrs(self, models: Sequence[CheckpointModel]) -> dict:
        """Global attributes saying how the ensemble was made (none when deterministic)."""
        if self.realization(models) is None:
            return {}
        how = []
        if any(noise_dim(m) for m in models):
            how.append("stochastic model noise")
        if self.perturb > 0:
            how.append(
                f"perturbed initial conditions ({self.perturb:g} x diff_std, smoothed "
                f"{SMOOTHING_GRID_POINTS:g} grid points)"
            )
        return {"ensemble_members": self.members, "ensemble_seed": self.seed} | {
            "ensemble_method": "; ".join(how)
        }


def check_ensemble(
    ensemble: Ensemble,
    models: Sequence[CheckpointModel],
    option: dict[str, str] | None = None,
) -> None:
    """UserError for members, seed or amplitude out of range, and for several members of
    deterministic models without perturbation (all of them would be the same forecast).
    ``option``: how the caller names members / perturb / seed (CLI or API)."""
    option = {"members": "--members", "perturb": "--perturb", "seed": "--seed"} | (option or {})
    members, perturb, seed = ensemble.members, ensemble.perturb, ensemble.seed
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        raise UserError(f"{option['members']} {members!r}: expected a positive number of members")
    if not (isinstance(perturb, (int, float)) and np.isfinite(perturb) and perturb >= 0):
        raise UserError(
            f"{option['perturb']} {perturb!r}: expected an amplitude >= 0 (in units of the "
            f"model's diff_std, e.g. {DEFAULT_PERTURBATION})"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"{option['seed']} {seed!r}: expected a whole number >= 0")
    if members > 1 and perturb == 0 and not any(noise_dim(m) for m in models):
        raise UserError(
            f"{option['members']} {members}: the model is deterministic, so every member "
            f"would be the same forecast; add {option['perturb']} AMPLITUDE (perturbed "
            "initial conditions), use a lagged ensemble, or a stochastic model"
        )


def _gaussian_rows(n: int, sigma: float, periodic: bool) -> np.ndarray:
    """[n, n] rows of Gaussian weights summing to 1 (wrapping around when periodic)."""
    i = np.arange(n)
    distance = np.abs(i[:, None] - i[None, :]).astype(np.float64)
    if periodic:
        distance = np.minimum(distance, n - distance)
    weights = np.exp(-0.5 * (distance / sigma) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def smoothing(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat [lat, lat], lon [lon, lon], scale [lat, 1]): separable Gaussian smoothing of
    SMOOTHING_GRID_POINTS std (periodic in longitude), and the factor bringing smoothed
    white noise back to unit variance at every latitude (so the amplitude stays in
    diff_std units)."""
    lat = _gaussian_rows(n_lat, SMOOTHING_GRID_POINTS, periodic=False)
    lon = _gaussian_rows(n_lon, SMOOTHING_GRID_POINTS, periodic=True)
    variance = (lat**2).sum(axis=1)[:, None] * (lon[0] ** 2).sum()  # [lat, 1]
    return lat, lon, 1.0 / np.sqrt(variance)


def perturb_initial_states(
    upper: np.ndarray,
    surface: np.ndarray,
    init_time: np.ndarray,
    member: np.ndarray,
    ensemble: Ensemble,
    model: CheckpointModel,
) -> tuple[np.ndarray, np.ndarray]:
    """Each state plus smooth Gaussian noise of ``ensemble.perturb`` x the model's
    diff_std per channel; upper [batch, level, lat, lon, var], surface [batch, lat, lon,
    var], init_time and member [batch]. The noise of a state is a function of (seed, init
    time, member) only, each state's computed on its own so the batch cannot change it."""
    n_lat, n_lon = upper.shape[2:4]
    lat, lon, scale = smoothing(n_lat, n_lon)
    keys = _member_keys(ensemble.seed, init_time, member, 0)
    channels = upper.shape[1] * upper.shape[4] + surface.shape[3]
    upper_std = np.asarray(model.norm.upper_diff_std, np.float64)  # [level, var]
    surface_std = np.asarray(model.norm.surface_diff_std, np.float64)  # [var]
    upper, surface = upper.copy(), surface.copy()
    for b in range(len(upper)):
        white = np.asarray(jax.random.normal(keys[b], (channels, n_lat, n_lon)), np.float64)
        smooth = np.einsum("ij,cjk,lk->cil", lat, white, lon) * scale  # [channel, lat, lon]
        n_upper = upper.shape[1] * upper.shape[4]
        noise_upper = smooth[:n_upper].reshape(upper.shape[1], upper.shape[4], n_lat, n_lon)
        noise_upper = noise_upper.transpose(0, 2, 3, 1)  # [level, lat, lon, var]
        noise_surface = smooth[n_upper:].transpose(1, 2, 0)  # [lat, lon, var]
        amplitude = ensemble.perturb
        upper[b] += (amplitude * upper_std[:, None, None, :] * noise_upper).astype(np.float32)
        surface[b] += (amplitude * surface_std * noise_surface).astype(np.float32)
    return upper, surface


@dataclasses.dataclass(frozen=True)
class LaggedPlan:
    """A lagged ensemble as one deterministic run: ``init_times`` (the nominal ones and
    every earlier one the members start from) to ``lead_hours`` (the requested leads and
    the longer ones the earlier starts need)."""

    init_times: np.ndarray
    lead_hours: list[int]
    members: int
    lag_hours: int


def lagged_plan(
    init_times: np.ndarray,
    lead_hours: Sequence[int],
    members: int,
    lag_hours: int,
    available: np.ndarray,
    option: str = "--lagged",
) -> LaggedPlan:
    """The run behind a lagged ensemble of ``members`` members ``lag_hours`` apart;
    UserError naming the earlier init times the data do not hold."""
    lag = np.timedelta64(int(lag_hours), "h")
    starts = np.asarray(init_times, "datetime64[ns]")[:, None] - lag * np.arange(members)
    extended = np.unique(starts.ravel())  # [init x member] starts, each once
    missing = extended[~np.isin(extended, np.asarray(available, "datetime64[ns]"))]
    if len(missing):
        shown = ", ".join(str(t)[:16] for t in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(
            f"{option} {members}: the lagged members start at {shown}{more}, not in the data; "
            "give later initial times, fewer members or data reaching further back"
        )
    leads = sorted({int(h) + k * int(lag_hours) for h in lead_hours for k in range(members)})
    return LaggedPlan(extended, leads, members, int(lag_hours))


class LaggedSink:
    """A ForecastSink taking the deterministic forecasts of a LaggedPlan's run and writing
    each into the ensemble sink ``target`` (members = realization), where it belongs: the
    run's (start s, lead L) is member k of nominal init s + k lag at lead L - k lag, so
    every member is verified at the same valid time."""

    def __init__(self, target: ForecastSink, plan: LaggedPlan, init_times: np.ndarray, lead_hours):
        self.target = target
        self.plan = plan
        self.nominal = {t: i for i, t in enumerate(np.asarray(init_times, "datetime64[ns]"))}
        self.wanted = {int(h) for h in lead_hours}

    def write(self, rows: Rows, lead_hours: int, upper: np.ndarray, surface: np.ndarray) -> None:
        lag = np.timedelta64(self.plan.lag_hours, "h")
        for j, start in enumerate(self.plan.init_times[rows]):
            for k in range(self.plan.members):
                init = self.nominal.get(start + k * lag)
                lead = int(lead_hours) - k * self.plan.lag_hours
                if init is not None and lead in self.wanted:
                    self.target.write(
                        (init, slice(k, k + 1)), lead, upper[j : j + 1], surface[j : j + 1]
                    )

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        self.target.mark_incomplete(reason, diverged)

    def close(self) -> None:
        self.target.close()
