"""Test-session setup shared by every suite."""

import os

from devstack.template import load_template

# Powertools reads its service and namespace when kie2s3 is first imported; in a Lambda container
# the environment exists before that import, so the tests give the template's values up front.
for _name, _value in load_template()["Globals"]["Function"]["Environment"]["Variables"].items():
    if _name.startswith("POWERTOOLS_") and isinstance(_value, str):
        os.environ.setdefault(_name, _value)
