"""Test-session setup shared by every suite."""

import os

from devstack.template import Resolver, load_template

# Powertools reads its service and namespace when kie2s3 is first imported; in a Lambda container
# the environment exists before that import, so the tests give the template's values up front (the
# service is the stack's name: the local stack's here).
_template = load_template()
for _name, _value in _template["Globals"]["Function"]["Environment"]["Variables"].items():
    if _name.startswith("POWERTOOLS_"):
        os.environ.setdefault(_name, str(Resolver(_template).resolve(_value)))
