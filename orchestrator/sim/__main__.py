"""`python3 -m orchestrator.sim <real command line>`: imitate the program that command starts.

Examples: `python3 -m orchestrator.sim vllm serve MODEL --port 8000`,
`python3 -m orchestrator.sim python3 -m sglang.launch_server --model-path M`,
`python3 -m orchestrator.sim nginx -g 'daemon off;'`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: python3 -m orchestrator.sim PROGRAM [ARGS...]

Imitates an engine, router or nginx from its real command line:
  vllm serve MODEL [--host H] [--port P] [--served-model-name N] [--api-key K] [--headless]
  sglang serve MODEL | python3 -m sglang.launch_server --model-path M [--host H] [--port P]
      [--enable-metrics] [--node-rank R] [--disaggregation-mode prefill|decode]
  vllm-router | python3 -m sglang_router.launch_router | smg launch
      (--pd-disaggregation --prefill URL [PORT] --decode URL | --worker-urls URL...) [--host] [--port]
  nginx [-c FILE] [-g DIRECTIVES]

Behaviour (environment): DEPLOY_SIM_LOAD_SECONDS, DEPLOY_SIM_WEIGHTS_GIB,
DEPLOY_SIM_WARMUP_SECONDS, DEPLOY_SIM_TTFT_MS, DEPLOY_SIM_TPOT_MS, DEPLOY_SIM_MAX_CONCURRENCY,
DEPLOY_SIM_EOS_TOKENS, DEPLOY_SIM_KV_TOKENS,
DEPLOY_SIM_FAULT=crash-after=S|hang|hang-after=S|never-ready|exit-on-start
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    from orchestrator.sim.server import main_from_argv

    return main_from_argv(args)


if __name__ == "__main__":
    sys.exit(main())
