"""One parser per kie.ai callback family behind one registry; detection is by shape, `?family=` hints."""

from kie2s3.families.base import FamilyParser, detect, find_task_id, parser_for
from kie2s3.families.registry import PARSERS

__all__ = ["PARSERS", "FamilyParser", "detect", "find_task_id", "parser_for"]
