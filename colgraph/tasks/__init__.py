"""Tasks: what goes into the input area, what is read out, and how it is scored."""
from .base import TASKS, Task, TaskOutput, build_task, register_task, task_class
from .classification import ImageClassification, SequenceClassification
from .forecast import NextFramePrediction
from .masked import MaskedImageModelling, random_mask
from .encoders import InputMap, PatchEmbedding, WindowEmbedding, patch_size_for, window_for

__all__ = ["Task", "TaskOutput", "TASKS", "register_task", "task_class", "build_task",
            "ImageClassification",
           "SequenceClassification", "PatchEmbedding", "WindowEmbedding", "patch_size_for",
           "window_for", "InputMap", "MaskedImageModelling", "random_mask",
           "NextFramePrediction"]
