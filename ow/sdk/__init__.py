"""ow.sdk: the client (`AsyncOpenWeights`), its sync facade (`OpenWeights`), job types.

Imports `ow.core` only (plus pydantic for user params models, lazily).
"""

from ow.sdk._client import AsyncOpenWeights
from ow.sdk._files import FileObject
from ow.sdk._jobs import Jobs
from ow.sdk._objects import Job, Run
from ow.sdk._registry import register
from ow.sdk._sync import OpenWeights

__all__ = ["AsyncOpenWeights", "FileObject", "Job", "Jobs", "OpenWeights", "Run", "register"]
