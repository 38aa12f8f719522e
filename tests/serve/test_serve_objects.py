"""The data objects' routes (``/objects``, ``/datasets``, ``/models``) over the parity fixture
and a few objects stored with ``DBAPI``, on DuckDB and PostgreSQL: metadata without the
payload, the payload as base64 with ``include_data``, versions, history, downloads of the exact
bytes, queries, paging in SQL, the delete refused without the token and done with it, and 4xx
answers with a JSON ``detail``."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from pg_support import PgDatabases
from query_helpers import MODEL_V0, MODEL_V1, T0, load, write_batches
from serve_helpers import Server, load_parity

DS_V0 = b"col\n1\n2\n"
DS_V1 = b"col\n1\n2\n3\n"
ODD = 'm "2'  # an id a header or a file name cannot hold as it is
ODD_BYTES = bytes(range(256))
META_ONLY = {"type": "object", "object_id": "meta-1", "version": 0, "object_type": "dataset",
             "workflow_id": "wf-misc", "created_at": T0 + 50, "updated_at": T0 + 50}  # fmt: skip
TOKEN = "s3cret"


def _store_objects(db) -> None:
    """ds-1 (a dataset, two versions kept), ODD (a model), through Flowcept.db's methods."""
    db.insert_or_update_dataset(DS_V0, object_id="ds-1", workflow_id="wf-diamond",
                                task_id="d1", tags=["raw"], control_version=True)  # fmt: skip
    # the workflow named: without it a version takes the last capture's workflow (Flowcept's
    # current_workflow_id), whichever test ran one before
    db.insert_or_update_dataset(DS_V1, object_id="ds-1", workflow_id="wf-diamond",
                                control_version=True, custom_metadata={"rows": 3})  # fmt: skip
    db.insert_or_update_ml_model(ODD_BYTES, object_id=ODD, workflow_id="wf-misc")
    db.close()


def _add_objects(options: list[str], folder) -> list[str]:
    """META_ONLY (loaded as a record) and the objects above into the database of the serve
    ``options`` (loaded with the parity fixture)."""
    from provwh.query.api import DBAPI
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    engine, location = options
    target = DuckTarget(location) if engine == "--duckdb" else PgTarget(location)
    load(target, write_batches(folder / "meta", [[META_ONLY]]))
    db = DBAPI.from_duckdb(location) if engine == "--duckdb" else DBAPI.from_postgres(location)
    _store_objects(db)
    return options


@pytest.fixture(scope="module", params=("duckdb", "postgres"))
def objects_server(request, tmp_path_factory, pg_server):
    """A read-only server over the parity fixture and the objects above."""
    folder = tmp_path_factory.mktemp(f"objects-{request.param}")
    if request.param == "duckdb":
        options = ["--duckdb", str(folder / "w.duckdb")]
    else:
        dbs = PgDatabases(pg_server, "provwh_s_")
        request.addfinalizer(dbs.drop_all)
        options = ["--postgres", dbs.create()]
    load_parity(request.param, options[1], folder / "batches")
    server = Server(_add_objects(options, folder), folder / "server")
    yield server
    server.stop_checked()


def ids(resp):
    assert resp.status_code == 200, resp.text
    return [o["object_id"] for o in resp.json()["items"]]


def detail(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()["detail"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_lists_hold_the_latest_versions_without_payloads(objects_server):
    s = objects_server
    body = s.get("/api/v1/objects").json()
    # oldest first (created_at), then the id: the fixture's, then those stored just now
    assert [(o["object_id"], o["version"]) for o in body["items"]] == [
        ("obj-1", 1), ("meta-1", 0), ("ds-1", 1), (ODD, 0)
    ]  # fmt: skip
    assert (body["count"], body["limit"], body["offset"], body["next_offset"]) == (4, 100, 0, None)
    assert all("data" not in o for o in body["items"])
    obj1 = body["items"][0]
    assert {k: obj1[k] for k in ("object_type", "task_id", "workflow_id", "prev_version",
                                 "object_size_bytes", "data_sha256", "created_at",
                                 "updated_at")} == {
        "object_type": "ml_model", "task_id": "a2", "workflow_id": "wf-chain",
        "prev_version": 0, "object_size_bytes": len(MODEL_V1), "data_sha256": sha(MODEL_V1),
        "created_at": T0 + 4, "updated_at": T0 + 6,
    }  # fmt: skip
    ds = body["items"][2]
    assert (ds["custom_metadata"], ds["tags"], ds["task_id"]) == ({"rows": 3}, ["raw"], "d1")
    # the parameters, filter_json and paging
    assert ids(s.get("/api/v1/objects", params={"type": "dataset"})) == ["meta-1", "ds-1"]
    assert ids(s.get("/api/v1/objects", params={"object_type": "ml_model"})) == ["obj-1", ODD]
    assert ids(s.get("/api/v1/objects", params={"workflow_id": "wf-misc"})) == ["meta-1", ODD]
    assert ids(s.get("/api/v1/objects", params={"task_id": "d1"})) == ["ds-1"]
    assert ids(s.get("/api/v1/objects", params={"object_id": ODD})) == [ODD]
    flt = orjson.dumps({"object_size_bytes": {"$gt": 14}}).decode()
    assert ids(s.get("/api/v1/objects", params={"filter_json": flt})) == [ODD]
    assert ids(s.get("/api/v1/objects", params={"sort": "-object_id"})) == [
        "obj-1", "meta-1", ODD, "ds-1"
    ]  # fmt: skip
    page = s.get("/api/v1/objects", params={"limit": 3, "offset": 1}).json()
    assert ([o["object_id"] for o in page["items"]], page["next_offset"]) == (
        ["meta-1", "ds-1", ODD], None
    )  # fmt: skip
    page = s.get("/api/v1/objects", params={"limit": 2}).json()
    assert page["next_offset"] == 2
    # datasets and models: the same, restricted to their type
    assert ids(s.get("/api/v1/datasets")) == ["meta-1", "ds-1"]
    assert ids(s.get("/api/v1/models")) == ["obj-1", ODD]
    assert ids(s.get("/api/v1/models", params={"workflow_id": "wf-chain"})) == ["obj-1"]
    assert ids(s.get("/api/v1/datasets", params={"filter_json": flt})) == []


def test_include_data_answers_the_payload_as_base64(objects_server):
    s = objects_server
    items = s.get("/api/v1/objects", params={"include_data": "true"}).json()["items"]
    payloads = {o["object_id"]: o.get("data") for o in items}
    assert payloads == {
        "obj-1": {"$binary": {"base64": base64.b64encode(MODEL_V1).decode(), "subType": "00"}},
        "meta-1": None,
        "ds-1": {"$binary": {"base64": base64.b64encode(DS_V1).decode(), "subType": "00"}},
        ODD: {"$binary": {"base64": base64.b64encode(ODD_BYTES).decode(), "subType": "00"}},
    }
    one = s.get("/api/v1/objects/obj-1/versions/0", params={"include_data": True}).json()
    assert base64.b64decode(one["data"]["$binary"]["base64"]) == MODEL_V0


def test_one_object_its_versions_and_history(objects_server):
    s = objects_server
    latest = s.get("/api/v1/objects/obj-1").json()
    assert (latest["version"], latest["data_sha256"], "data" in latest) == (1, sha(MODEL_V1), False)
    v0 = s.get("/api/v1/objects/obj-1/versions/0").json()
    assert (v0["version"], v0["custom_metadata"], v0["object_size_bytes"]) == (
        0, {"framework": "torch"}, len(MODEL_V0)
    )  # fmt: skip
    assert "data" not in v0
    assert s.get("/api/v1/models/obj-1").json() == latest
    assert s.get("/api/v1/datasets/ds-1/versions/0").json()["tags"] == ["raw"]
    history = s.get("/api/v1/objects/ds-1/history").json()
    assert [(h["version"], h["prev_version"], h["object_size_bytes"], h["storage_type"])
            for h in history["items"]] == [(1, 0, len(DS_V1), "in_object"),
                                           (0, None, len(DS_V0), "in_object")]  # fmt: skip
    assert (history["count"], history["limit"]) == (2, 100)
    one = s.get("/api/v1/datasets/ds-1/history", params={"limit": 1}).json()
    assert ([h["version"] for h in one["items"]], one["count"], one["limit"]) == ([1], 1, 1)
    assert s.get("/api/v1/objects/meta-1/history").json()["items"][0]["storage_type"] is None


def test_downloads_answer_the_exact_bytes(objects_server):
    s = objects_server

    def download(path, **params):
        resp = s.get(path, params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/octet-stream"
        return resp.content, resp.headers["content-disposition"]

    assert download("/api/v1/objects/obj-1/download") == (
        MODEL_V1, 'attachment; filename="obj-1.bin"'
    )  # fmt: skip
    assert download("/api/v1/objects/obj-1/versions/0/download") == (
        MODEL_V0, 'attachment; filename="obj-1.v0.bin"'
    )  # fmt: skip
    assert download("/api/v1/models/obj-1/download", version=0)[0] == MODEL_V0
    assert download("/api/v1/datasets/ds-1/download")[0] == DS_V1
    assert download("/api/v1/datasets/ds-1/versions/0/download")[0] == DS_V0
    assert download(f"/api/v1/models/{ODD}/download") == (
        ODD_BYTES, 'attachment; filename="m__2.bin"'
    )  # fmt: skip


def test_queries(objects_server):
    s = objects_server
    body = {"filter": {"workflow_id": {"$in": ["wf-chain", "wf-diamond"]}},
            "sort": [{"field": "object_id", "order": -1}]}  # fmt: skip
    got = s.post("/api/v1/objects/query", json=body).json()
    assert [(o["object_id"], o["version"]) for o in got["items"]] == [("obj-1", 1), ("ds-1", 1)]
    assert all("data" not in o for o in got["items"])
    assert (got["count"], got["limit"], got["next_offset"]) == (2, 100, None)
    got = s.post("/api/v1/objects/query", json={**body, "include_data": True}).json()
    assert got["items"][1]["data"]["$binary"]["base64"] == base64.b64encode(DS_V1).decode()
    got = s.post("/api/v1/datasets/query", json=body).json()
    assert [o["object_id"] for o in got["items"]] == ["ds-1"]
    got = s.post("/api/v1/models/query", json={"projection": ["object_id", "data"]}).json()
    assert got["items"] == [{"object_id": "obj-1"}, {"object_id": ODD}]
    agg = {"projection": ["object_type"],
           "aggregation": [{"operator": "count", "field": "object_id"},
                           {"operator": "sum", "field": "object_size_bytes"}],
           "sort": [{"field": "object_type", "order": 1}]}  # fmt: skip
    assert s.post("/api/v1/objects/query", json=agg).json()["items"] == [
        {"object_type": "dataset", "count_object_id": 2, "sum_object_size_bytes": len(DS_V1)},
        {"object_type": "ml_model", "count_object_id": 2,
         "sum_object_size_bytes": len(MODEL_V1) + len(ODD_BYTES)},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "path, params, status, expected",
    [
        ("/api/v1/objects/nope", {}, 404, "Object not found: nope"),
        ("/api/v1/objects/obj-1/versions/7", {}, 404, "Object not found: obj-1, version=7"),
        ("/api/v1/objects/nope/history", {}, 404, "Object not found: nope"),
        ("/api/v1/objects/nope/download", {}, 404, "Object not found: nope"),
        ("/api/v1/objects/obj-1/versions/9/download", {}, 404,
         "Object not found: obj-1, version=9"),
        ("/api/v1/objects/meta-1/download", {}, 404, "Object payload not available: meta-1"),
        ("/api/v1/datasets/obj-1", {}, 404, "Dataset not found: obj-1"),
        ("/api/v1/datasets/obj-1/download", {}, 404, "Dataset not found: obj-1"),
        ("/api/v1/models/ds-1/versions/0", {}, 404, "Model not found: ds-1, version=0"),
        ("/api/v1/models/ds-1/history", {}, 404, "Model not found: ds-1"),
        ("/api/v1/objects/obj-1/versions/one", {}, 400,
         "version: Input should be a valid integer, unable to parse string as an integer"),
        ("/api/v1/objects", {"filter_json": "{nope"}, 400,
         "Invalid filter JSON: unexpected character"),
        ("/api/v1/objects", {"filter_json": "[]"}, 400,
         "filter_json must decode to a JSON object."),
        ("/api/v1/objects", {"limit": 0}, 400,
         "limit: Input should be greater than or equal to 1"),
        ("/api/v1/objects", {"include_data": "maybe"}, 400,
         "include_data: Input should be a valid boolean, unable to interpret input"),
        ("/api/v1/objects", {"type": "dataset", "object_type": "ml_model"}, 400,
         "type and object_type name different object types"),
        ("/api/v1/datasets", {"type": "ml_model"}, 400,
         "/datasets holds the objects of type 'dataset' only"),
        ("/api/v1/objects", {"filter_json": '{"version": {"$bad": 1}}'}, 400,
         "unknown operator '$bad'"),
    ],
)  # fmt: skip
def test_bad_requests_answer_a_detail(objects_server, path, params, status, expected):
    got = detail(objects_server.get(path, params=params), status)
    assert got == expected or got.startswith(expected)


def test_bad_query_bodies(objects_server):
    s = objects_server
    assert detail(s.post("/api/v1/objects/query", json={"limit": -1}), 400) == (
        "body.limit: Input should be greater than or equal to 0"
    )
    assert detail(s.post("/api/v1/models/query", json={"include_data": "x"}), 400) == (
        "body.include_data: Input should be a valid boolean, unable to interpret input"
    )


def test_delete_is_refused_without_the_token(objects_server):
    s = objects_server
    refused = (
        "this server is read-only: start it with --token (or PROVWH_SERVE_TOKEN) to allow writes"
    )
    assert detail(s.client.delete("/api/v1/objects/obj-1"), 403) == refused
    assert s.get("/api/v1/objects/obj-1/download").content == MODEL_V1


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_delete_with_the_token(engine, tmp_path, database, start_server):
    s = start_server(_add_objects(database(engine), tmp_path), "--token", TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert detail(s.client.delete("/api/v1/objects/ds-1"), 401) == (
        "a write needs the server's token: Authorization: Bearer <token>"
    )
    wrong = {"Authorization": "Bearer guess"}
    assert detail(s.client.delete("/api/v1/objects/ds-1", headers=wrong), 403) == "wrong token"
    resp = s.client.delete("/api/v1/objects/ds-1", headers=bearer)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted": {"objects": 1, "versions": 2}, "object_id": "ds-1"}
    assert ids(s.get("/api/v1/objects")) == ["obj-1", "meta-1", ODD]
    assert detail(s.get("/api/v1/objects/ds-1/versions/0"), 404) == (
        "Object not found: ds-1, version=0"
    )
    assert detail(s.client.delete("/api/v1/objects/ds-1", headers=bearer), 404) == (
        "Object not found: ds-1"
    )
