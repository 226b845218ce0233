"""`deploy bench`: load generation, metrics, the knee and a recommendation, and reports.

Modules, in the order a run passes through them: `options` (settings), `workload` (request
bodies), `client` (one streaming request), `loadgen` (a level's phases), `selfcheck` (is
the client the bottleneck), `metrics` (vLLM's definitions), `recommend` (knee and level),
`runner` (the sweep), `report` / `plots` (outputs), `command` (the CLI's one call).
Nothing here imports aiohttp, rich or matplotlib at module level.
"""
