"""Run under torchrun by tests/test_distributed.py: an IMP run on several processes, each one
recording the masks it trained with and the weights it ended with."""

import json
import os
import sys

import torch

from domains.nlp import NLPDomain
from domains.vision import VisionDomain
from tickets import registry
from tickets.cli import main
from tickets.rewind import capture

torch.set_num_threads(1)
OUT = sys.argv[2]
RANK = int(os.environ["RANK"])


class Recording:
    def train(self, model, **kw):
        result = super().train(model, **kw)
        state = capture(model)
        record = {n: {"nonzero": int((t != 0).sum()), "checksum": float(t.double().abs().sum())}
                  for n, t in state.items()}
        with open(os.path.join(OUT, f"rank{RANK}.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        return result


class RecordingVision(Recording, VisionDomain):
    name = "recording_vision"


class RecordingNLP(Recording, NLPDomain):
    name = "recording_nlp"


registry.domains.register("recording_vision", RecordingVision)
registry.domains.register("recording_nlp", RecordingNLP)
sys.exit(main(["run", sys.argv[1], "--out", os.path.join(OUT, "runs"), "--quiet"]))
