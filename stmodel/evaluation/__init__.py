"""Skill scores in the WeatherBench 2 conventions, baselines and the scorecard.

Everything here works on forecasts in the WeatherBench 2 forecast layout:
dims ``time`` (init time), ``prediction_timedelta``, ``level`` (upper-air
only), ``latitude`` (ascending), ``longitude`` ([0, 360), ascending).
"""
