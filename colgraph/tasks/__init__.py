"""Tasks: what goes into the input area, what is read out, and how it is scored."""
from .base import TASKS, Task, TaskOutput, build_task, register_task, task_class
from .classification import ImageClassification
from .encoders import PatchEmbedding, patch_size_for, retinotopic_order

__all__ = ["Task", "TaskOutput", "TASKS", "register_task", "task_class", "build_task",
            "ImageClassification",
           "PatchEmbedding", "patch_size_for", "retinotopic_order"]
