"""Fine-tuning and pre-training tasks in numpy: readers, features, collation, post-processing and metrics."""
