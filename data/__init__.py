"""Datasets (Kaggle COVID-19 Radiography Database, synthetic chest X-rays) and the input pipeline."""
from data.builder import prepare, user_cache_dir
from data.pipeline import (Batch, class_weights, eval_batches, pipeline_throughput, resize_image, steps_per_epoch,
                           to_model_input, train_batches)
from data.prepared import PreparedDataset, SplitArrays
from data.spec import DataSpec, PipelineSpec

__all__ = ["Batch", "DataSpec", "PipelineSpec", "PreparedDataset", "SplitArrays", "class_weights", "eval_batches",
           "pipeline_throughput", "prepare", "resize_image", "steps_per_epoch", "to_model_input", "train_batches",
           "user_cache_dir"]
