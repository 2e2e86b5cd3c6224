
import orjson

from stream.contract.schemas import TOPIC_MODELS, ChurnAlert, json_schemas
from tests.fixtures.paths import ROOT

SCHEMAS = ROOT / "schemas"


def test_committed_json_schemas_are_the_generated_ones():
    generated = json_schemas()
    assert sorted(generated) == sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    for name, text in generated.items():
        assert (SCHEMAS / name).read_text() == text, f"{name} is stale: run `make schemas`"


def test_every_topic_has_a_schema_with_the_contract_fields():
    schemas = {n: orjson.loads(t) for n, t in json_schemas().items()}
    assert set(TOPIC_MODELS) == {n.removesuffix(".schema.json") for n in schemas}
    alert = schemas["crm.churn-alerts.schema.json"]
    for field in ("alert_id", "member_id", "churn_probability", "risk_level", "reasons",
                  "factors", "lifecycle_stage", "value", "suggested_action", "model_version",
                  "event_time", "emitted_at", "schema_version"):
        assert field in alert["properties"], field
    assert set(alert["required"]) >= set(ChurnAlert.model_fields) - {"schema_version"}
    event = schemas["shop.events.schema.json"]
    assert set(event["required"]) == {"event_id", "member_id", "type", "item_id", "ts"}
