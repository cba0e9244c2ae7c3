"""Behaviour policies: an online SAC trainer whose snapshots generate offrl's datasets."""
