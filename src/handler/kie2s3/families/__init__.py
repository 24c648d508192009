"""One parser per kie.ai callback family behind one registry; detection is by shape, `?family=` hints."""

from kie2s3.families.base import UNKNOWN, FamilyParser, detect, parser_for, task_id_of
from kie2s3.families.registry import PARSERS

__all__ = ["PARSERS", "UNKNOWN", "FamilyParser", "detect", "parser_for", "task_id_of"]
