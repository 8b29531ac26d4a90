"""A tiny Inspect-AI task for test_inspect: three inline samples, scored by `includes`.

Not a test module: the `inspect_ai` job loads it by path (`inspect eval <file>@colors`).
Imports: inspect_ai.
"""

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

SAMPLES = [("What color is the sky?", "blue"), ("What color is grass?", "green"),
           ("Say hello.", "hello")]


@task
def colors() -> Task:
    return Task(
        dataset=MemoryDataset([Sample(input=q, target=a) for q, a in SAMPLES]),
        solver=generate(),
        scorer=includes(),
    )
