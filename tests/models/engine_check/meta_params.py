"""Run inside the vLLM CPU image: build each fixture's model on the meta device (no weights)
with the image's transformers and print its parameter count as JSON (MTP modules excluded)."""

import json
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

out = {}
for name in sys.argv[1:]:
    path = f"/fixtures/{name}"
    try:
        config = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for n, p in model.named_parameters() if "mtp" not in n)
        out[name] = {"params": total, "class": type(model).__name__}
    except Exception as error:  # one line per model the image cannot build
        out[name] = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
print(json.dumps(out))
