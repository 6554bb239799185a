"""The seed paper's reported test results (cited reference data) and its training recipe, for `fusion-sweep reproduce`.

Source: the seed paper (Torres, 2023), its three models' classification-report figures on the Kaggle
COVID-19 Radiography Database, COVID vs Normal: the from-scratch CNN, ResNet50V2 (Flatten/Dense(2048)
head) and their fusion (CNN cut before "conv2d_8", ResNet50V2 cut at conv3_block4_2_relu). Only the
cells quoted in this project's brief are transcribed (overall accuracy and COVID recall); the other cells
are None ("not transcribed"), never guessed.
"""
from __future__ import annotations

CITATION = ("Torres (2023), the seed paper of fusion-sweep: a from-scratch CNN, ResNet50V2 and their fusion "
            "for COVID vs Normal chest X-rays (Kaggle COVID-19 Radiography Database); test-set classification "
            "reports as shown in its figures.")

SEED_MODELS = ("cnn", "resnet50v2", "fusion")
MODEL_TITLES = {"cnn": "CNN (from scratch)", "resnet50v2": "ResNet50V2 (Flatten head)", "fusion": "the seed's fusion"}

# model -> {"accuracy": float, class -> {"precision", "recall", "f1-score"}}; None = not transcribed.
PAPER_REPORTS: dict[str, dict] = {
    "cnn": {"accuracy": 0.94, "COVID": {"precision": None, "recall": 0.94, "f1-score": None},
            "Normal": {"precision": None, "recall": None, "f1-score": None}},
    "resnet50v2": {"accuracy": 0.99, "COVID": {"precision": None, "recall": 0.98, "f1-score": None},
                   "Normal": {"precision": None, "recall": None, "f1-score": None}},
    "fusion": {"accuracy": 0.86, "COVID": {"precision": None, "recall": 0.92, "f1-score": None},
               "Normal": {"precision": None, "recall": None, "f1-score": None}},
}

# The seed's recipe (all three models): COVID vs Normal, COVID oversampled x3 in train, RMSprop(1e-4),
# batch 16, up to 50 epochs, early stopping on val accuracy with patience 5 (best weights restored),
# augmentation only where it reached in the seed: the CNN, and the CNN branch of the fusion.
RECIPE = {"classes": ("COVID", "Normal"), "oversample": (3.0, 1.0), "optimizer": "rmsprop", "learning_rate": 1e-4,
          "batch_size": 16, "epochs": 50, "patience": 5, "image_size": 256}


def paper_report_text(model: str) -> str:
    """The paper's numbers for `model` laid out like sklearn's report ('--' where not transcribed)."""
    paper = PAPER_REPORTS[model]
    lines = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9}", ""]
    for name in RECIPE["classes"]:
        cells = paper[name]
        lines.append(f"{name:>12} " + " ".join(_cell(cells[k]) for k in ("precision", "recall", "f1-score")))
    lines += ["", f"{'accuracy':>12} {'':>9} {'':>9} {_cell(paper['accuracy'])}"]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return f"{value:>9.2f}" if value is not None else f"{'--':>9}"
