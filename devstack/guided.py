"""`make deploy-guided`: ask each template parameter with its meaning, save the answers, run the preflight.

    python -m devstack.guided [--config-env default] [--stack-name S] [--region R] [--params "K=V ..."]

It asks in the template's order (the order of README's Parameters table), each question preceded by
the parameter's Description; Enter keeps the value in brackets: PARAMS, else your saved answer, else
the stack's current value, else the template's default. `""` answers an empty value. A value
CloudFormation or the functions would refuse is asked again. The answers go to samconfig.local.toml
(gitignored: it may hold your account's ARNs), a copy of samconfig.toml's settings with your
`parameter_overrides`; then the preflight runs on them, before anything is built or deployed, and
`make deploy-guided` deploys with `sam deploy --config-file samconfig.local.toml` only if it passes.
Region and account are never saved: they are your AWS configuration's (or REGION=) at each deploy.

SAM's own `sam deploy --guided` is not used: it shows no parameter's meaning, saves the region into the
config file, asks about every unauthenticated route (kie.ai's callback route must be one) with "no"
as the default, and could run the preflight only after uploading and creating the changeset.
"""

import argparse
import json
import sys
import textwrap
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from devstack.cli import Parser, UserError, aws_session, run
from devstack.preflight import (
    CONFIG_FILE,
    LOCAL_CONFIG_FILE,
    Report,
    add_target_options,
    parameter_problem,
    parse_overrides,
    previous_parameters,
    quote_override,
    read_config,
    report_preflight,
    stack_name_of,
    unsavable,
)
from devstack.template import REPO_ROOT, load_template

EMPTY_ANSWER: Final = '""'


def _refusal(name: str, spec: Mapping[str, Any], value: str) -> str | None:
    """Why a value cannot be deployed: CloudFormation's constraints, and for ForwardUrl the forwarder's rule."""
    if (refused := unsavable(value)) is not None:
        return refused
    if name == "ForwardUrl" and value:
        from kie2s3.settings import forward_target_refusal

        return forward_target_refusal(value, allow_local=False)
    return parameter_problem(name, spec, value)


def ask(
    template: Mapping[str, Any], defaults: Mapping[str, str], read: Callable[[str], str] | None = None
) -> dict[str, str]:
    """Every parameter's answer, asked in the template's order with its meaning (`read`: `input`)."""
    read = read or input
    answers: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        default = defaults.get(name, str(spec.get("Default", "")))
        print(f"\n{name}", flush=True)
        for line in textwrap.wrap(" ".join(str(spec.get("Description", "")).split()), 96):
            print(f"  {line}")
        if "AllowedValues" in spec:
            print(f"  one of: {', '.join(str(value) for value in spec['AllowedValues'])}")
        while True:
            try:
                typed = read(f"  {name} [{default}]: ").strip()
            except EOFError as exc:
                raise UserError(f"no answer for {name}: nothing saved, nothing deployed") from exc
            value = "" if typed == EMPTY_ANSWER else (typed or default)
            refused = _refusal(name, spec, value)
            if refused is None:
                break
            print(f"  refused: {refused}", flush=True)
        answers[name] = value
    return answers


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def dump_config(document: Mapping[str, Any]) -> str:
    """A SAM config document (scalars, then tables of tables of scalars) as TOML."""
    lines = [
        f"{key} = {_toml_value(value)}" for key, value in document.items() if not isinstance(value, dict)
    ]

    def tables(prefix: str, table: Mapping[str, Any]) -> None:
        scalars = {key: value for key, value in table.items() if not isinstance(value, dict)}
        if scalars:
            lines.extend(["", f"[{prefix}]"])
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
        for key, value in table.items():
            if isinstance(value, dict):
                tables(f"{prefix}.{key}", value)

    for key, value in document.items():
        if isinstance(value, dict):
            tables(key, value)
    return "\n".join(lines) + "\n"


def save_answers(
    shared: Path, local: Path, env: str, answers: Mapping[str, str], stack_name: str | None
) -> None:
    """samconfig.local.toml: samconfig.toml's settings, with this environment's answers (and stack name)."""
    with shared.open("rb") as handle:
        document = tomllib.load(handle)
    section = document.setdefault(env, {})
    deploy = section.setdefault("deploy", {}).setdefault("parameters", {})
    deploy["parameter_overrides"] = " ".join(
        f"{key}={quote_override(value)}" for key, value in answers.items()
    )
    if stack_name:
        section.setdefault("global", {}).setdefault("parameters", {})["stack_name"] = stack_name
    header = (
        f"# Your answers to `make deploy-guided`, over {shared.name}'s settings: `make deploy` reads this file\n"
        "# while it exists. Gitignored (it may hold your account's ARNs); delete it to go back to\n"
        f"# {shared.name}'s values. Region and account are never saved here.\n"
    )
    local.write_text(header + dump_config(document))


def main(argv: Sequence[str] | None = None) -> int:
    """Ask, save, preflight: 0 when the answers are ready to deploy."""
    parser = Parser(
        prog="devstack.guided", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_target_options(parser)
    parser.add_argument("--save-to", default=str(REPO_ROOT / LOCAL_CONFIG_FILE), help="where the answers go")
    args = parser.parse_args(argv)
    shared = Path(args.config_file) if args.config_file else REPO_ROOT / CONFIG_FILE
    local = Path(args.save_to)
    settings = {**read_config(shared, args.config_env, given=True), **read_config(local, args.config_env)}
    stack_name = stack_name_of(args, settings)
    session = aws_session(f"make deploy-guided (stack {stack_name})", region=args.region)
    print(f"deploying stack {stack_name} to region {session.region_name} (REGION=<region> to change it)")
    report = Report()
    defaults = {
        **previous_parameters(session.client("cloudformation"), stack_name, report),
        **parse_overrides(settings.get("parameter_overrides", "")),
        **(parse_overrides(args.params) if args.params else {}),
    }
    for line in report.unchecked:
        print(f"not checked: {line}")
    print(
        f"Enter keeps the value in brackets; {EMPTY_ANSWER} answers an empty value. README, Parameters, says more."
    )
    answers = ask(load_template(), defaults)
    save_answers(shared, local, args.config_env, answers, args.stack_name)
    print(f"\nsaved your answers to {local.name} [{args.config_env}]")
    return report_preflight(session, stack_name, answers)


if __name__ == "__main__":
    sys.exit(run(main))
