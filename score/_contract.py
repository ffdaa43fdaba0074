"""The SavedModel names batch scoring relies on (see README, "The SavedModel contract").

Kept in this one module until ``headswitch.contract`` is on main; switching is then a one-line
import change here.
"""

from __future__ import annotations

SIGNATURE_IDS = "serving_default"  # (text: string[b], task_id: int32[b])
SIGNATURE_TASKS = "tasks"  # (unused: int32[b]) -> the task table
INPUT_TEXT = "text"
INPUT_TASK_ID = "task_id"
INPUT_UNUSED = "unused"
OUTPUT_SCORES = "scores"  # float32[b, K], padded to the widest head
OUTPUT_TOP_LABEL = "top_label"  # string[b]
OUTPUT_TOP_SCORE = "top_score"  # float32[b]
OUTPUT_ERROR = "error"  # string[b], "" when the example is fine (newer exports only)
TASKS_ID = "task_id"  # int32[b, N]
TASKS_NAME = "name"  # string[b, N]
TASKS_NUM_CLASSES = "num_classes"  # int32[b, N]
TASKS_LABELS = "labels"  # string[b, N, K]
TASKS_ACTIVATION = "activation"  # string[b, N]
