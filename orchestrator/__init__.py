"""deploy: plan, render, start and supervise vLLM and SGLang deployments."""

__version__ = "0.1.0"
