"""The seed paper's cited numbers: its three models' test results, and their sizes as Keras counts them.

Source: the seed paper (Torres, 2023), its three models' classification-report figures on the Kaggle
COVID-19 Radiography Database, COVID vs Normal: the from-scratch CNN, ResNet50V2 (Flatten/Dense(2048)
head) and their fusion (CNN cut before "conv2d_8", ResNet50V2 cut at conv3_block4_2_relu). Only the
cells quoted in this project's brief are transcribed (overall accuracy and COVID recall); the other cells
are None ("not transcribed"), never guessed. The seed's training recipe is the `paper` preset
(sweep/configs/paper.py).
"""
from __future__ import annotations

from data.spec import SEED_CLASSES
from models.param_count import param_count
from models.registry import MODEL_NAMES
from models.spec import FusionSpec

CITATION = ("Torres (2023), the seed paper of fusion-sweep: a from-scratch CNN, ResNet50V2 and their fusion "
            "for COVID vs Normal chest X-rays (Kaggle COVID-19 Radiography Database); test-set classification "
            "reports as shown in its figures.")

SEED_MODELS = MODEL_NAMES  # the paper's three models: the two parents and the seed's fusion
PAPER_IMAGE_SIZE = 256
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


def paper_report_text(model: str) -> str:
    """The paper's numbers for `model` laid out like sklearn's report ('--' where not transcribed)."""
    paper = PAPER_REPORTS[model]
    lines = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9}", ""]
    for name in SEED_CLASSES:
        cells = paper[name]
        lines.append(f"{name:>12} " + " ".join(_cell(cells[k]) for k in ("precision", "recall", "f1-score")))
    lines += ["", f"{'accuracy':>12} {'':>9} {'':>9} {_cell(paper['accuracy'])}"]
    return "\n".join(lines) + "\n"


def paper_points() -> list[dict]:
    """The paper's three models as points of an accuracy-vs-params plot: its test accuracy, and the params Keras
    counts for each at 256x256x3, 2 classes (counted here from the layer graphs; tests pin them to Keras)."""
    points = []
    for model in SEED_MODELS:
        spec = FusionSpec() if model == "fusion" else model
        params, _ = param_count(spec, image_size=PAPER_IMAGE_SIZE, num_classes=len(SEED_CLASSES))
        points.append({"model": model, "params": params, "test_accuracy": PAPER_REPORTS[model]["accuracy"]})
    return points


def _cell(value) -> str:
    return f"{value:>9.2f}" if value is not None else f"{'--':>9}"
