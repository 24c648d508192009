"""The registry of family parsers, most specific shapes first; a new family is one module and one line."""

from kie2s3.families.base import FamilyParser
from kie2s3.families.market import MarketParser

PARSERS: tuple[FamilyParser, ...] = (MarketParser(),)
