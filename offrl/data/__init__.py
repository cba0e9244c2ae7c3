"""Datasets: D4RL hdf5 files, Minari datasets, locally collected data, and the task registry."""
