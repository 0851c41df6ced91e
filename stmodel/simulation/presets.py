"""Named configurations of the built-in simulated reanalysis (Held-Suarez with dinosaur).

A preset fixes everything that determines the output file: resolution, time
step, spin-up, the output periods and the random seed. Two runs of one preset
with the same dinosaur version give the same file, so a finished file can be
recognised by its preset fingerprint and reused.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json

from stmodel.errors import UserError

# Bump when a code change alters the numbers written for an unchanged preset,
# so that files and work directories of older versions are not reused.
SIMULATION_FORMAT_VERSION = 2  # 2: files declare the planet's symmetries


@dataclasses.dataclass(frozen=True)
class SpinupStage:
    """One leg of the spin-up: `days` at one resolution and time step."""

    truncation: int
    time_step_minutes: float
    days: int


@dataclasses.dataclass(frozen=True)
class SimulationPreset:
    """A Held-Suarez run: model resolution, spin-up, output grid and periods.

    Attributes:
      name: the preset's name, as given to `stmodel data generate --preset`.
      description: one line for `--help`.
      truncation: triangular spectral truncation of the model that is written
        out (21 for T21, 42 for T42); the model runs on dinosaur's matching
        Gaussian grid.
      output_latitudes, output_longitudes: size of the equiangular output grid
        (cell-centred latitudes, no poles; longitudes from 0). The spectral
        state is synthesised exactly at these points, no horizontal
        interpolation.
      train_period, validation_period, test_period: inclusive first and last
        days ("YYYY-MM-DD") of the written output; contiguous, in this order.
        The output runs 6-hourly from 00 UTC of the first training day to
        18 UTC of the last test day.
      spinup_days: days integrated from an isothermal atmosphere at rest before
        any output; not written.
      time_step_minutes: model time step at `truncation`.
      sigma_layers: number of equidistant sigma layers.
      spinup_truncation, spinup_time_step_minutes: resolution and time step of
        the spin-up, if cheaper than those of the output run (None: the
        same). The spun-up state is transferred spectrally to `truncation`.
      adjustment_days: days at `truncation` and `time_step_minutes` after a
        spin-up at another resolution, so newly resolved scales fill in before
        output starts; not written.
      seed: seeds the position of the initial surface-pressure perturbation
        that breaks the zonal symmetry.
      chunk_days: days of output per resumable chunk file.
      surface_pressure_perturbation_pa: amplitude of that perturbation.
    """

    name: str
    description: str
    truncation: int
    output_latitudes: int
    output_longitudes: int
    train_period: tuple[str, str]
    validation_period: tuple[str, str]
    test_period: tuple[str, str]
    spinup_days: int
    time_step_minutes: float
    sigma_layers: int = 24
    spinup_truncation: int | None = None
    spinup_time_step_minutes: float | None = None
    adjustment_days: int = 0
    seed: int = 0
    chunk_days: int = 10
    surface_pressure_perturbation_pa: float = 5.0e3

    def __post_init__(self):
        periods = (self.train_period, self.validation_period, self.test_period)
        days = [tuple(_parse_day(day, self.name) for day in period) for period in periods]
        for (first, last), label in zip(days, ("train", "validation", "test")):
            if last < first:
                raise ValueError(f"preset {self.name!r}: {label} period ends before it starts")
        for (_, last), (first, _) in itertools.pairwise(days):
            if first != last + datetime.timedelta(days=1):
                raise ValueError(
                    f"preset {self.name!r}: train, validation and test periods "
                    "must follow each other without gaps"
                )
        for minutes in (self.time_step_minutes, self.spinup_time_step_minutes):
            if minutes is not None and (6 * 60) % minutes:
                raise ValueError(
                    f"preset {self.name!r}: time steps must divide 6 hours, got {minutes} min"
                )

    @property
    def first_day(self) -> datetime.date:
        return _parse_day(self.train_period[0], self.name)

    @property
    def output_days(self) -> int:
        """Whole days of output, spin-up excluded."""
        last_day = _parse_day(self.test_period[1], self.name)
        return (last_day - self.first_day).days + 1

    @property
    def separate_spinup(self) -> bool:
        """Whether the spin-up runs at another truncation or time step than the output."""
        return (self.spinup_truncation or self.truncation) != self.truncation or (
            self.spinup_time_step_minutes or self.time_step_minutes
        ) != self.time_step_minutes

    def spinup_stages(self) -> list[SpinupStage]:
        """The legs from rest to the first output day, in order.

        One stage at the output resolution, or a spin-up at its own resolution
        followed by `adjustment_days` at the output resolution.
        """
        output_stage = SpinupStage(self.truncation, self.time_step_minutes, self.spinup_days)
        if not self.separate_spinup:
            return [output_stage]
        spinup_stage = SpinupStage(
            self.spinup_truncation or self.truncation,
            self.spinup_time_step_minutes or self.time_step_minutes,
            self.spinup_days,
        )
        return [spinup_stage, dataclasses.replace(output_stage, days=self.adjustment_days)]

    @property
    def resolution(self) -> str:
        """Human-readable resolution, for the file's attributes."""
        spacing = 180.0 / self.output_latitudes
        text = (
            f"dinosaur T{self.truncation} spectral on the Gaussian grid, "
            f"{self.sigma_layers} equidistant sigma layers, "
            f"{self.time_step_minutes:g} min time step; written on the "
            f"{spacing:g} deg equiangular grid "
            f"({self.output_latitudes} x {self.output_longitudes})"
        )
        return text

    def fingerprint(self, dinosaur_version: str) -> str:
        """A string that changes whenever the written numbers could change."""
        fields = dataclasses.asdict(self)
        fields.pop("description")
        fields["format_version"] = SIMULATION_FORMAT_VERSION
        fields["dinosaur_version"] = dinosaur_version
        return json.dumps(fields, sort_keys=True)


def _parse_day(text: str, preset_name: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"preset {preset_name!r}: {text!r} is not a YYYY-MM-DD date") from None


# Time steps. T21 runs with 60 min: after the same 200-day spin-up, 100 days at
# 30 and at 60 min gave the same climate (250 hPa jets 30-33 m/s at +/-31 deg,
# Z500 persistence RMSE at 3 d 808 vs 791 m2/s2) and 60 min halves the cost.
# T42 runs with 30 min, the same advective Courant number as T21 at 60 min.
# hires spins up at T21 (8x cheaper per day than T42) and then adjusts 20 days
# at T42: in the 60 written days that follow, the 250 hPa jets stay at
# 38-41 deg (T21: 31 deg) and the global-mean T850 within 0.15 K, so the T42
# climate is reached before output starts.
PRESETS: dict[str, SimulationPreset] = {
    preset.name: preset
    for preset in (
        SimulationPreset(
            name="tiny",
            description="T21, 5 days of output after a 3-day spin-up (not in equilibrium: "
            "for tests)",
            truncation=21,
            output_latitudes=32,
            output_longitudes=64,
            train_period=("2000-01-01", "2000-01-02"),
            validation_period=("2000-01-03", "2000-01-03"),
            test_period=("2000-01-04", "2000-01-05"),  # room for 1-day forecasts
            spinup_days=3,
            time_step_minutes=60.0,
            chunk_days=1,
        ),
        SimulationPreset(
            name="default",
            description="T21 on the 5.625 deg grid: 200-day spin-up, then 12 months train, "
            "2 months validation, 2 months test (16 months, 6-hourly)",
            truncation=21,
            output_latitudes=32,
            output_longitudes=64,
            train_period=("2000-01-01", "2000-12-31"),
            validation_period=("2001-01-01", "2001-02-28"),
            test_period=("2001-03-01", "2001-04-30"),
            spinup_days=200,
            time_step_minutes=60.0,
        ),
        SimulationPreset(
            name="pretrain",
            description="T21 on the 5.625 deg grid, seed 1 (not the default data's trajectory): "
            "200-day spin-up, then 4 years train, 2 months validation, 2 months test",
            truncation=21,
            output_latitudes=32,
            output_longitudes=64,
            train_period=("2000-01-01", "2003-12-31"),
            validation_period=("2004-01-01", "2004-02-29"),
            test_period=("2004-03-01", "2004-04-30"),
            spinup_days=200,
            time_step_minutes=60.0,
            seed=1,
            chunk_days=20,
        ),
        SimulationPreset(
            name="hires",
            description="T42 on the 2.8125 deg grid, 60 days (truth for downscaling); "
            "spun up 200 days at T21, then 20 days at T42",
            truncation=42,
            output_latitudes=64,
            output_longitudes=128,
            train_period=("2000-01-01", "2000-02-11"),
            validation_period=("2000-02-12", "2000-02-20"),
            test_period=("2000-02-21", "2000-02-29"),
            spinup_days=200,
            time_step_minutes=30.0,
            spinup_truncation=21,
            spinup_time_step_minutes=60.0,
            adjustment_days=20,
            chunk_days=5,
        ),
    )
}


def get_preset(preset: str | SimulationPreset) -> SimulationPreset:
    """Returns the preset of that name (or the preset itself); UserError if unknown."""
    if isinstance(preset, SimulationPreset):
        return preset
    if preset not in PRESETS:
        known = ", ".join(PRESETS)
        raise UserError(f"unknown simulation preset {preset!r}; expected one of: {known}")
    return PRESETS[preset]
