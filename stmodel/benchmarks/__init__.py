"""Benchmarks behind `stmodel bench ...`: one module per benchmark, each returning a
JSON-ready dict (the command module only parses arguments and prints the result).

* :mod:`stmodel.benchmarks.model`: forward pass and training step of the network
* :mod:`stmodel.benchmarks.memory`: XLA's memory plan of the sharded training step and of a
  forecast step, compiled for shapes only
* :mod:`stmodel.benchmarks.forecast`: a 10-day forecast against the dynamical core
* :mod:`stmodel.benchmarks.ensemble` (training half in
  :mod:`stmodel.benchmarks.ensemble_training`): what an ensemble costs, stochastic steps
  and CRPS training against deterministic ones, and against the dynamical core
* :mod:`stmodel.benchmarks.pipeline`: samples per second of the training-sample pipeline

Helpers they share: :mod:`stmodel.benchmarks.flops` (analytic and XLA FLOP counts),
``median_seconds`` and ``side_by_side`` of :mod:`stmodel.benchmarks.model` (timings)
and :mod:`stmodel.benchmarks.xla_profile` (time per XLA operation group).
"""
