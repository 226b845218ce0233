"""Targets beyond Docker hosts: Kubernetes (LeaderWorkerSet) manifests and Slurm batch jobs,
rendered from the same `Plan` and `ServiceSpec`s as the compose files.

- `render`: `deploy render --target k8s|slurm`;
- `k8s`, `slurm`: the two renderers; `instances`: what they share;
- `settings`: the cluster file's `kubernetes:` and `slurm:` sections;
- `slurm_runtime`: `deploy up|status|logs|down --target slurm`.

Kept free of imports so that the CLI's options module can live here without slowing start-up.
"""
