"""The compose target: per-node compose files, launch.sh, nginx.conf and the README, from ServiceSpecs."""
