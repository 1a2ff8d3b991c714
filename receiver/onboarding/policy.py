"""The resource's XACML 3.0 policy, in the shape Altinn's resource registry takes.

Structure and attribute ids follow the example policy Altinn publishes for correspondence resources
(altinn-studio-docs `content/correspondence/getting-started/ExamplePolicy.xml`): a deny-overrides policy whose
rules each match a subject, the resource (`urn:altinn:resource`) and a set of actions (`read`, `write`,
`subscribe`), with an obligation of authentication level 3 (what a Maskinporten-based Altinn token carries).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from receiver.onboarding.agency import Agency

XACML = "urn:oasis:names:tc:xacml:3.0:core:schema:wd-17"
STRING = "http://www.w3.org/2001/XMLSchema#string"
INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
STRING_EQUAL = "urn:oasis:names:tc:xacml:1.0:function:string-equal"
STRING_EQUAL_IGNORE_CASE = "urn:oasis:names:tc:xacml:3.0:function:string-equal-ignore-case"
DENY_OVERRIDES = "urn:oasis:names:tc:xacml:3.0:rule-combining-algorithm:deny-overrides"
SUBJECT = "urn:oasis:names:tc:xacml:1.0:subject-category:access-subject"
RESOURCE = "urn:oasis:names:tc:xacml:3.0:attribute-category:resource"
ACTION = "urn:oasis:names:tc:xacml:3.0:attribute-category:action"
ROLE_CODE_ATTRIBUTE = "urn:altinn:rolecode"
ORG_ATTRIBUTE = "urn:altinn:org"
RESOURCE_ATTRIBUTE = "urn:altinn:resource"
ACTION_ATTRIBUTE = "urn:oasis:names:tc:xacml:1.0:action:action-id"
MINIMUM_AUTHENTICATION_LEVEL = 3

RECIPIENT_ACTIONS = ("read", "subscribe")
# The sender writes; it subscribes too, because Altinn Events asks the PDP for `subscribe` on the resource for
# every subscription on a correspondence resource, the service owner's own included (events contract §1.2).
SERVICE_OWNER_ACTIONS = ("write", "subscribe")

ET.register_namespace("xacml", XACML)


def _tag(name: str) -> str:
    return f"{{{XACML}}}{name}"


def _sub(parent: ET.Element, name: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, _tag(name), attributes)


def _match(all_of: ET.Element, value: str, attribute: str, category: str, function: str = STRING_EQUAL) -> None:
    match = _sub(all_of, "Match", MatchId=function)
    _sub(match, "AttributeValue", DataType=STRING).text = value
    _sub(match, "AttributeDesignator", AttributeId=attribute, Category=category, DataType=STRING,
         MustBePresent="false")  # fmt: skip


def _any_of(target: ET.Element, values: tuple[str, ...], attribute: str, category: str, function: str) -> None:
    """One AnyOf: the rule applies when the attribute equals any of `values`."""
    any_of = _sub(target, "AnyOf")
    for value in values:
        _match(_sub(any_of, "AllOf"), value, attribute, category, function)


def _rule(
    policy: ET.Element,
    number: int,
    agency: Agency,
    comment: str,
    subject: tuple[str, str, str],
    actions: tuple[str, ...],
) -> None:
    policy.append(ET.Comment(f" {comment} "))
    rule = _sub(policy, "Rule", RuleId=f"urn:altinn:resource:{agency.resource_id}:ruleid:{number}", Effect="Permit")
    _sub(rule, "Description").text = comment
    target = _sub(rule, "Target")
    value, attribute, function = subject
    _any_of(target, (value,), attribute, SUBJECT, function)
    _any_of(target, (agency.resource_id,), RESOURCE_ATTRIBUTE, RESOURCE, STRING_EQUAL)
    _any_of(target, actions, ACTION_ATTRIBUTE, ACTION, STRING_EQUAL)


def build_policy(agency: Agency) -> ET.Element:
    """The policy for `agency.resource_id`: recipients with the role code read and subscribe; the service owner
    (a service-owner agency that gave its Altinn org code) writes and subscribes."""
    policy = ET.Element(
        _tag("Policy"),
        {
            "PolicyId": f"urn:altinn:resource:{agency.resource_id}:policyid:1",
            "Version": "1.0",
            "RuleCombiningAlgId": DENY_OVERRIDES,
        },
    )
    _sub(
        policy, "Description"
    ).text = f"Access to the correspondence resource {agency.resource_id}, written by altinn-receiver init."
    _sub(policy, "Target")
    _rule(
        policy,
        1,
        agency,
        f"Recipients: a person with role {agency.role_code} in the receiving organisation, or a system user it "
        "delegated to, may open and read correspondences (read) and subscribe to their events (subscribe).",
        (agency.role_code, ROLE_CODE_ATTRIBUTE, STRING_EQUAL),
        RECIPIENT_ACTIONS,
    )
    if agency.is_service_owner:
        _rule(
            policy,
            2,
            agency,
            f"Sender: the service owner {agency.owner_code} (its Maskinporten client, through an Altinn token with "
            "altinn:serviceowner) may send correspondences (write) and subscribe to their status events.",
            (agency.owner_code, ORG_ATTRIBUTE, STRING_EQUAL_IGNORE_CASE),
            SERVICE_OWNER_ACTIONS,
        )
    policy.append(ET.Comment(f" Every permit requires authentication level {MINIMUM_AUTHENTICATION_LEVEL} or higher. "))
    obligations = _sub(policy, "ObligationExpressions")
    obligation = _sub(obligations, "ObligationExpression", FulfillOn="Permit", ObligationId="urn:altinn:obligation:1")
    assignment = _sub(
        obligation,
        "AttributeAssignmentExpression",
        AttributeId="urn:altinn:obligation-assignment:1",
        Category="urn:altinn:minimum-authenticationlevel",
    )
    _sub(assignment, "AttributeValue", DataType=INTEGER).text = str(MINIMUM_AUTHENTICATION_LEVEL)
    return policy


def policy_xml(agency: Agency) -> str:
    policy = build_policy(agency)
    ET.indent(policy, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(policy, encoding="unicode") + "\n"
