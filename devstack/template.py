"""Read template.yaml and resolve its intrinsic functions as `sam local invoke --parameter-overrides` would."""

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
TEMPLATE_PATH: Final = REPO_ROOT / "template.yaml"

# What the local stack stands for: moto's default account in us-east-1 of the commercial partition.
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"
PARTITION: Final = "aws"
URL_SUFFIX: Final = "amazonaws.com"
DEFAULT_STACK_NAME: Final = "kie2s3-local"

FUNCTION_TYPES: Final = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})

_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template cannot be read, or a value in it cannot be resolved locally."""


class _NoValue:
    """`AWS::NoValue`: removes the property or list element it stands for."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


# PyYAML's C loader when it was built with libyaml (it is in the wheels), else its pure-Python one.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_BaseLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags, read as cfn-lint and CloudFormation read them.

    `!Ref x` and `!Condition x` become `{"Ref": x}` / `{"Condition": x}`, every other `!Name` becomes
    `{"Fn::Name": ...}`, and `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`. A key given twice in
    one mapping is an error (CloudFormation refuses it too). PyYAML, not cfn-lint: importing cfn-lint
    took 5 s, on every `make invoke` and every test session.
    """


def _short_form(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(node, yaml.ScalarNode):
        return {name: str(loader.construct_scalar(node)).split(".", 1)}
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


def _mapping(loader: Any, node: Any) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise TemplateError(
                f"key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=True))


_TemplateLoader.add_multi_constructor("!", _short_form)
_TemplateLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, short-form tags (`!Ref`, `!Sub`, ...) in their long form."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    try:
        template = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506  # a SafeLoader with CloudFormation's tags
    except yaml.YAMLError as exc:
        raise TemplateError(f"cannot parse template {path}: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return template


def _scalar_text(value: Any) -> str:
    """A parameter or environment value as CloudFormation passes it: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TemplateError(f"expected a string, got {type(value).__name__} {value!r}")


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every parameter's value: the override if given, else its Default; checked against AllowedValues."""
    declared: dict[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides name no template parameter: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = _scalar_text(overrides[name])
        elif "Default" in spec:
            value = _scalar_text(spec["Default"])
        else:
            continue  # referencing it raises; a template may declare parameters a function never uses
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [_scalar_text(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of its AllowedValues {allowed}")
        values[name] = value
    return values


def _name_from_url(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _account_from_url(queue_url: str) -> str:
    parts = queue_url.rstrip("/").rsplit("/", 2)
    return parts[-2] if len(parts) == 3 and parts[-2].isdigit() else ACCOUNT_ID


# Fn::GetAtt of the resource types the local stack provisions, computed from the physical id.
_ATTRIBUTES: Final[dict[str, dict[str, Callable[[str], str]]]] = {
    "AWS::SQS::Queue": {
        "Arn": lambda url: f"arn:{PARTITION}:sqs:{REGION}:{_account_from_url(url)}:{_name_from_url(url)}",
        "QueueName": _name_from_url,
        "QueueUrl": lambda url: url,
    },
    "AWS::S3::Bucket": {
        "Arn": lambda name: f"arn:{PARTITION}:s3:::{name}",
        "DomainName": lambda name: f"{name}.s3.{URL_SUFFIX}",
        "RegionalDomainName": lambda name: f"{name}.s3.{REGION}.{URL_SUFFIX}",
    },
    "AWS::DynamoDB::Table": {
        "Arn": lambda name: f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}",
    },
}


class Resolver:
    """Evaluates intrinsic functions against parameter values and the physical ids of created resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameter_overrides: Mapping[str, str] | None = None,
        physical_ids: Mapping[str, str] | None = None,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
    ) -> None:
        self.template = template
        self.parameters = parameter_values(template, parameter_overrides)
        self.physical_ids = dict(physical_ids or {})
        self.stack_name = stack_name
        self._conditions: dict[str, bool] = {}

    # ------------------------------------------------------------------ references
    def _pseudo(self, name: str) -> Any:
        match name:
            case "AWS::Region":
                return REGION
            case "AWS::AccountId":
                return ACCOUNT_ID
            case "AWS::Partition":
                return PARTITION
            case "AWS::URLSuffix":
                return URL_SUFFIX
            case "AWS::StackName":
                return self.stack_name
            case "AWS::StackId":
                return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local"
            case "AWS::NotificationARNs":
                return []
            case "AWS::NoValue":
                return NO_VALUE
        raise TemplateError(f"unknown pseudo parameter {name}")

    def ref(self, name: str) -> Any:
        """`Ref`: a pseudo parameter, a parameter's value, or a resource's physical id."""
        if name.startswith("AWS::"):
            return self._pseudo(name)
        declared = self.template.get("Parameters") or {}
        if name in declared:
            if name not in self.parameters:
                raise TemplateError(f"parameter {name} has no Default and no override")
            value = self.parameters[name]
            if str(declared[name].get("Type", "")).startswith(("CommaDelimitedList", "List<")):
                return [item.strip() for item in value.split(",")] if value else []
            return value
        resources = self.template.get("Resources") or {}
        if name not in resources:
            raise TemplateError(f"Ref to {name}, which is neither a parameter nor a resource")
        if name not in self.physical_ids:
            kind = resources[name].get("Type")
            raise TemplateError(f"Ref to resource {name} ({kind}), which has no local physical id")
        return self.physical_ids[name]

    def get_att(self, logical_id: str, attribute: str) -> str:
        """`Fn::GetAtt` of a locally provisioned resource."""
        resources = self.template.get("Resources") or {}
        if logical_id not in resources:
            raise TemplateError(f"Fn::GetAtt of unknown resource {logical_id}")
        kind = resources[logical_id].get("Type", "")
        compute = _ATTRIBUTES.get(kind, {}).get(attribute)
        if compute is None:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} ({kind}) is not supported locally")
        if logical_id not in self.physical_ids:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: {logical_id} has no local physical id")
        return compute(self.physical_ids[logical_id])

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        """The value of one of the template's Conditions."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        if not isinstance(expression, dict) or len(expression) != 1:
            raise TemplateError(f"not a condition expression: {expression!r}")
        [(function, argument)] = expression.items()
        match function:
            case "Condition":
                return self.condition(str(argument))
            case "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return bool(_scalar_text(left) == _scalar_text(right))
            case "Fn::Not":
                return not self._truth(argument[0])
            case "Fn::And":
                return all(self._truth(item) for item in argument)
            case "Fn::Or":
                return any(self._truth(item) for item in argument)
        raise TemplateError(f"{function} is not a condition function")

    def check_rules(self) -> None:
        """The template's Rules, as CloudFormation checks them before creating anything: every
        assertion of a rule whose RuleCondition holds must hold (TemplateError with its description)."""
        for name, rule in (self.template.get("Rules") or {}).items():
            if "RuleCondition" in rule and not self._truth(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self._truth(assertion["Assert"]):
                    raise TemplateError(
                        f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}"
                    )

    # ------------------------------------------------------------------ values
    def resolve(self, value: Any) -> Any:
        """A value with every intrinsic function evaluated; `NO_VALUE` where `AWS::NoValue` removes it."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, function: str, argument: Any) -> Any:
        """An intrinsic function: the references and conditions here, the rest by `_value_function`."""
        match function:
            case "Ref":
                return self.ref(str(argument))
            case "Condition":
                return self.condition(str(argument))
            case "Fn::GetAtt":
                if isinstance(argument, str):
                    argument = argument.split(".", 1)
                logical_id, attribute = (str(self.resolve(part)) for part in argument)
                return self.get_att(logical_id, attribute)
            case "Fn::Sub":
                return self._sub(argument)
            case "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(str(name)) else when_false)
            case "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or":
                return self._truth({function: argument})
        return self._value_function(function, argument)

    def _value_function(self, function: str, argument: Any) -> Any:
        """An intrinsic function that makes a value of others: lists, text, mappings."""
        match function:
            case "Fn::Join":
                delimiter, items = argument
                return str(delimiter).join(_scalar_text(item) for item in self._list(items))
            case "Fn::Select":
                index, items = argument
                return self._list(items)[int(self.resolve(index))]
            case "Fn::Split":
                delimiter, text = argument
                return _scalar_text(self.resolve(text)).split(str(delimiter))
            case "Fn::FindInMap":
                mapping, top, second = (_scalar_text(self.resolve(item)) for item in argument)
                try:
                    return self.resolve(self.template["Mappings"][mapping][top][second])
                except KeyError as exc:
                    raise TemplateError(f"Fn::FindInMap {mapping}/{top}/{second}: no such entry") from exc
            case "Fn::Base64":
                return base64.b64encode(_scalar_text(self.resolve(argument)).encode()).decode()
            case "Fn::GetAZs":
                return [f"{REGION}{zone}" for zone in "abcdef"]
        raise TemplateError(f"{function} cannot be resolved locally")

    def _list(self, value: Any) -> list[Any]:
        resolved = self.resolve(value)
        if not isinstance(resolved, list):
            raise TemplateError(f"expected a list, got {resolved!r}")
        return resolved

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            local = {name: self.resolve(item) for name, item in variables.items()}
        else:
            text, local = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is written out as ${Literal}
            if name in local:
                return _scalar_text(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return _scalar_text(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, str(text))


def function_environment(
    template: Mapping[str, Any],
    parameter_overrides: Mapping[str, str] | None = None,
    physical_ids: Mapping[str, str] | None = None,
    function: str = "ApiFunction",
    *,
    stack_name: str = DEFAULT_STACK_NAME,
) -> dict[str, str]:
    """A function's environment: Globals.Function's variables merged with its own, every value resolved.

    Parameters take their override or Default, resources their physical id; a variable whose value
    resolves to `AWS::NoValue` is left out. Raises `TemplateError` naming the variable it cannot resolve.
    """
    resources = template.get("Resources") or {}
    resource = resources.get(function)
    if not isinstance(resource, dict) or resource.get("Type") not in FUNCTION_TYPES:
        raise TemplateError(f"{function} is not a function of the template")
    resolver = Resolver(template, parameter_overrides, physical_ids, stack_name=stack_name)
    global_function = (template.get("Globals") or {}).get("Function") or {}
    variables: dict[str, Any] = {}
    for source in (global_function, resource.get("Properties") or {}):
        declared = (source.get("Environment") or {}).get("Variables") or {}
        if not isinstance(declared, dict):
            raise TemplateError(f"{function}: Environment.Variables is not a mapping")
        variables.update(declared)
    environment: dict[str, str] = {}
    for name, value in variables.items():
        try:
            resolved = resolver.resolve(value)
            if resolved is NO_VALUE:
                continue
            environment[name] = _scalar_text(resolved)
        except (TemplateError, ValueError, TypeError, IndexError) as exc:
            raise TemplateError(f"{function}: cannot resolve environment variable {name}: {exc}") from exc
    return environment


@dataclass(frozen=True)
class StreamMapping:
    """A DynamoDB stream event source mapping of the template, by the logical ids it joins."""

    function: str
    table: str
    batch_size: int
    starting_position: str
    max_retry_attempts: int  # -1: until the records expire (Lambda's default)
    bisect_on_error: bool
    on_failure: str | None  # the queue the mapping sends what it gives up on


def _logical_id(value: Any, attribute: str | None = None) -> str | None:
    """The logical id behind `Ref X` (attribute None) or `Fn::GetAtt X.attribute`."""
    if not isinstance(value, dict):
        return None
    if attribute is None:
        found = value.get("Ref")
        return found if isinstance(found, str) else None
    target = value.get("Fn::GetAtt")
    if isinstance(target, list) and len(target) == 2 and target[1] == attribute:
        return str(target[0])
    return None


def stream_mappings(template: Mapping[str, Any]) -> list[StreamMapping]:
    """The template's mappings of a table's stream (`EventSourceArn: !GetAtt Table.StreamArn`) to a
    function (`FunctionName: !Ref Function`), with the settings the local stack plays them with."""
    found = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource.get("Properties") or {}
        table = _logical_id(props.get("EventSourceArn"), "StreamArn")
        function = _logical_id(props.get("FunctionName"))
        if table is None:
            continue
        if function is None:
            raise TemplateError(f"{logical_id}: FunctionName must be a Ref to a function of the template")
        destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        found.append(
            StreamMapping(
                function=function,
                table=table,
                batch_size=int(props.get("BatchSize", 100)),
                starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
                max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                on_failure=_logical_id(destination, "Arn"),
            )
        )
    return found
