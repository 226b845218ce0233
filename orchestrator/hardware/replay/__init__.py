"""Recorded machines replayed: NVML and sysfs stand-ins fed by `deploy detect --record` files (tests, doctor replays); never the live detection path."""
