"""An argument name a tool does not know, at any depth, is refused with the closest valid name; it is
never silently dropped."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.catalog import audiences
from tests.conftest import tool_errors

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tools(client):
    return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_every_input_schema_forbids_unknown_names(tools):
    assert all(tool.input_schema.get("additionalProperties") is False for tool in tools.values())


async def test_a_wrong_case_argument_is_refused_and_changes_nothing(call, store, space_id):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Buyers",
                            definition={"query": "event('Order Completed').count() >= 1"})
    audience_id = created["audience"]["id"]
    error = await call.error("update_audience_for_space", spaceId=space_id, id=audience_id, Enabled=False)
    assert error == {"type": "input-validation", "field": "Enabled",
                     "message": "Enabled: unknown argument; did you mean 'enabled'?"}
    assert audiences.get_audience(store, space_id, audience_id).enabled is True


async def test_a_wrong_case_nested_option_is_refused(call, space_id):
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="Buyers",
                             definition={"query": "event('Order Completed').count() >= 1"},
                             options={"IncludeHistoricalData": False})
    assert error["field"] == "options.IncludeHistoricalData"
    assert "did you mean 'includeHistoricalData'" in error["message"]
    assert (await call.ok("list_audiences", spaceId=space_id))["audiences"] == []


def _names(tool) -> list[str]:
    return list(tool.input_schema["properties"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_random_extra_and_wrong_case_keys_are_always_refused(client, tools, data):
    tool = tools[data.draw(st.sampled_from(sorted(tools)), label="tool")]
    known = _names(tool)
    wrong_case = [name.upper() for name in known if name.upper() not in known]
    extra = data.draw(st.one_of(st.sampled_from(wrong_case) if wrong_case else st.nothing(),
                                st.text(min_size=1, max_size=12).filter(lambda key: key not in known)), label="key")
    result = await client.call_tool(tool.name, {extra: data.draw(st.from_type(int) | st.text(max_size=5))})
    errors = tool_errors(result)
    assert {"type": "input-validation", "field": extra} in [{"type": e["type"], "field": e["field"]} for e in errors]
    if extra in wrong_case:
        assert any(f"did you mean '{extra.lower()}'" in e["message"].lower() for e in errors), json.dumps(errors)


@pytest.mark.parametrize("given", ["yes", "true", 1, 0, "off"])
async def test_a_boolean_argument_that_is_not_true_or_false_is_refused(call, space_id, given):
    error = await call.error("create_destination", spaceId=space_id, metadataId="webhooks-actions", name="Hooks",
                             settings={}, enabled=given)
    assert error == {"type": "input-validation", "field": "enabled",
                     "message": f"enabled: must be true or false, not {json.dumps(given)}"}


@pytest.mark.parametrize("tool", ["list_audiences", "list_spaces"])
async def test_a_cursor_of_a_huge_offset_is_refused_as_input(call, space_id, tool):
    cursor = base64.b64encode(b"1" * 26).decode()
    arguments = {"spaceId": space_id} if tool == "list_audiences" else {}
    error = await call.error(tool, pagination={"cursor": cursor, "count": 10}, **arguments)
    assert error["type"] == "input-validation" and error["field"] == "pagination.cursor"
