"""Checks that the Terraform module matches the SAM template: every
template parameter is a module variable with the same default, the fixed
settings (timeouts, retention, redrive) agree, and the function's and the
uploader's IAM policies have the same statements with the same actions.

    python infra/parity.py   (in the venv infra/install.sh makes)

Exits 1 and says what differs.
"""

import ast
import re
import sys
from pathlib import Path

import hcl2
from cfnlint.decode import decode

HERE = Path(__file__).resolve().parent
# Module variables with no template parameter: the template gets its code
# from `sam deploy` packaging and its names from CloudFormation.
TERRAFORM_ONLY = {"name", "lambda_zip"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def template():
    parsed, errors = decode(str(HERE / "sam" / "template.yaml"))
    if errors:
        sys.exit(f"template.yaml does not parse: {errors}")
    return parsed


def module():
    blocks = {}
    for path in sorted((HERE / "terraform").glob("*.tf")):
        with open(path) as f:
            parsed = hcl2.load(f)
        for kind, items in parsed.items():
            blocks.setdefault(kind, []).extend(items)
    return blocks


def attribute(body: dict, name: str):
    """python-hcl2 wraps each attribute's value in a one-element list."""
    value = body.get(name)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def normal(value) -> str:
    """A default as text, whatever its type in either language."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def parameters_match(tpl, mod) -> list[str]:
    problems = []
    variables = {}
    for block in mod.get("variable", []):
        for name, body in block.items():
            variables[name] = attribute(body, "default")
    for name, body in tpl["Parameters"].items():
        var = snake(name)
        if var not in variables:
            problems.append(f"parameter {name}: no variable {var!r} in the module")
        elif normal(variables[var]) != normal(body.get("Default")):
            problems.append(
                f"parameter {name}: default {body.get('Default')!r} but {var} = {variables[var]!r}"
            )
    expected = {snake(n) for n in tpl["Parameters"]} | TERRAFORM_ONLY
    for var in sorted(set(variables) - expected):
        problems.append(f"variable {var}: no parameter in the template")
    return problems


# (template resource, property path) -> (module resource type, name, attribute)
SETTINGS = {
    ("IndexFunction", "Timeout"): ("aws_lambda_function", "index", "timeout"),
    ("IndexFunction", "MemorySize"): ("aws_lambda_function", "index", "memory_size"),
    ("EventQueue", "VisibilityTimeout"): ("aws_sqs_queue", "events", "visibility_timeout_seconds"),
    ("EventQueue", "MessageRetentionPeriod"): ("aws_sqs_queue", "events", "message_retention_seconds"),
    ("DeadLetterQueue", "MessageRetentionPeriod"): (
        "aws_sqs_queue",
        "dead_letters",
        "message_retention_seconds",
    ),
}


def module_resource(mod, kind: str, name: str) -> dict:
    for block in mod["resource"]:
        if name in block.get(kind, {}):
            return block[kind][name]
    sys.exit(f"the module has no {kind}.{name}")


def settings_match(tpl, mod) -> list[str]:
    problems = []
    for (logical, prop), (kind, name, attr) in SETTINGS.items():
        want = tpl["Resources"][logical]["Properties"][prop]
        have = attribute(module_resource(mod, kind, name), attr)
        if isinstance(want, dict) and "Ref" in want:
            want = "${var.%s}" % snake(want["Ref"])
        if normal(want) != normal(have):
            problems.append(f"{logical}.{prop} is {want!r} but {kind}.{name}.{attr} is {have!r}")
    redrive = tpl["Resources"]["EventQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    module_redrive = attribute(module_resource(mod, "aws_sqs_queue", "events"), "redrive_policy")
    if f"'maxReceiveCount': {redrive}" not in module_redrive:
        problems.append(f"maxReceiveCount is {redrive} in the template but not in the module")
    return problems


def environment_match(tpl, mod) -> list[str]:
    """The function gets the same PKGSUM_* variables from both."""
    template_env = tpl["Resources"]["IndexFunction"]["Properties"]["Environment"]["Variables"]
    function = module_resource(mod, "aws_lambda_function", "index")
    module_env = attribute(attribute(function, "environment"), "variables")
    have, want = set(module_env), set(template_env)
    problems = [f"{v}: set by the template, not by the module" for v in sorted(want - have)]
    problems += [f"{v}: set by the module, not by the template" for v in sorted(have - want)]
    return problems


def function_code_match(tpl, mod) -> list[str]:
    """The CloudFront Function's code is infra/cloudfront/basic-auth.js in
    both: inline in the template (CloudFormation cannot read files), by
    file() in the module."""
    problems = []
    want = (HERE / "cloudfront" / "basic-auth.js").read_text()
    code = tpl["Resources"]["BasicAuthFunction"]["Properties"]["FunctionCode"]
    if code != want:
        problems.append("BasicAuthFunction.FunctionCode differs from infra/cloudfront/basic-auth.js")
    module_code = attribute(module_resource(mod, "aws_cloudfront_function", "basic_auth"), "code")
    if "../cloudfront/basic-auth.js" not in module_code:
        problems.append(f"aws_cloudfront_function.basic_auth.code is {module_code!r}, not the file")
    return problems


def read_statements(tpl, mod) -> list[str]:
    """The repository read policy grants the same Sids with the same
    actions in both."""
    document = tpl["Resources"]["RepositoryReadPolicy"]["Properties"]["PolicyDocument"]
    sam = {}
    for statement in document["Statement"]:
        branch = statement["Fn::If"][1] if "Fn::If" in statement else statement
        sam[branch["Sid"]] = actions(branch)
    text = attribute(module_resource(mod, "aws_s3_bucket_policy", "repository_read"), "policy")
    tf = {}
    for sid in re.finditer(r"'Sid': '(\w+)'", text):
        action = re.compile(r"'Action': '([\w:]+)'").search(text, sid.end())
        tf[sid.group(1)] = (action.group(1),) if action else ()
    if sam != tf:
        return [f"read policy statements differ: template {sam} module {tf}"]
    return []


def actions(statement) -> tuple[str, ...]:
    action = statement["Action"]
    return tuple(sorted([action] if isinstance(action, str) else action))


def template_statements(tpl) -> dict:
    role = tpl["Resources"]["FunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    return {s["Sid"]: actions(s) for s in policy["PolicyDocument"]["Statement"]}


def template_uploader(tpl) -> dict:
    """The uploader's statements: Sid -> effect, actions, conditions (the
    denials matter as much as the grant)."""
    document = tpl["Resources"]["UploaderPolicy"]["Properties"]["PolicyDocument"]
    return {s["Sid"]: shape(s) for s in document["Statement"]}


def shape(statement) -> tuple:
    condition = statement.get("Condition", {})
    keys = tuple(sorted(f"{op}:{key}={value}" for op, test in condition.items() for key, value in test.items()))
    return (statement["Effect"], actions(statement), keys)


def module_statements(mod, kind: str, name: str, of=None) -> dict:
    text = attribute(module_resource(mod, kind, name), "policy")
    body = re.fullmatch(r"\$\{jsonencode\((.*)\)\}", text, re.S)
    document = ast.literal_eval(body.group(1))
    return {s["Sid"]: (of or actions)(s) for s in document["Statement"]}


def main() -> None:
    tpl, mod = template(), module()
    problems = parameters_match(tpl, mod) + settings_match(tpl, mod) + environment_match(tpl, mod)
    problems += function_code_match(tpl, mod) + read_statements(tpl, mod)
    sam = template_statements(tpl)
    tf = module_statements(mod, "aws_iam_role_policy", "function")
    if sam != tf:
        problems.append(f"IAM statements differ: template {sam} module {tf}")
    document = tpl["Resources"]["PrunePolicy"]["Properties"]["PolicyDocument"]
    prune = {s["Sid"]: actions(s) for s in document["Statement"]}
    tf = module_statements(mod, "aws_iam_role_policy", "prune")
    if prune != tf:
        problems.append(f"prune statements differ: template {prune} module {tf}")
    uploader = template_uploader(tpl)
    tf = module_statements(mod, "aws_iam_policy", "uploader", shape)
    if uploader != tf:
        problems.append(f"uploader statements differ: template {uploader} module {tf}")
    for problem in problems:
        print(f"parity: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"parity: {len(tpl['Parameters'])} parameters, {len(SETTINGS) + 1} settings and "
        f"{len(sam)} + {len(prune)} + {len(uploader)} IAM statements (function, prune, uploader) "
        "match between "
        "infra/sam and infra/terraform"
    )


if __name__ == "__main__":
    main()
