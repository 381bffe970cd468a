"""The GLUE tasks (Wang et al. 2019) as the NLP domain reads them from the hub (``nyu-mll/glue``):
columns, label kind and each task's own metric as the GLUE benchmark defines it (MCC for CoLA,
F1 for MRPC and QQP, Pearson for STS-B, accuracy otherwise). Every row records the others too;
``dataset.metric`` makes another one primary (some papers report accuracy for MRPC and QQP).

GLUE hides its test labels, so a task's dev set is the test split here and the validation split
(for the early-stop iteration) is the first 5% of the training set, which is then left out of
training.
"""

from __future__ import annotations

from dataclasses import dataclass

HUB_PATH = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    text_column: str
    text_pair_column: str | None
    num_labels: int  # 1: regression
    metric: str
    dev_split: str = "validation"

    def splits(self) -> dict[str, str]:
        return {"train_split": "train[5%:]", "validation_split": "train[:5%]", "test_split": self.dev_split}


GLUE: dict[str, GlueTask] = {
    "cola": GlueTask("sentence", None, 2, "mcc"),
    "sst2": GlueTask("sentence", None, 2, "accuracy"),
    "mrpc": GlueTask("sentence1", "sentence2", 2, "f1"),
    "stsb": GlueTask("sentence1", "sentence2", 1, "pearson"),
    "qqp": GlueTask("question1", "question2", 2, "f1"),
    "mnli": GlueTask("premise", "hypothesis", 3, "accuracy", "validation_matched"),
    "qnli": GlueTask("question", "sentence", 2, "accuracy"),
    "rte": GlueTask("sentence1", "sentence2", 2, "accuracy"),
}
