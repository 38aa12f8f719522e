"""Flowcept 1.0.3's controller-level object saves and service status, on the configured
(embedded DuckDB) database, called as Flowcept users write them (issue 16)."""

import io
import pickle

import torch

from provwh import Flowcept


def test_services_status_with_duckdb():
    assert Flowcept.services_status() == {"spool": "ok", "duckdb": "ok"}


def test_controller_insert_or_update_objects():
    with Flowcept(workflow_name="objects") as f:
        oid = Flowcept.insert_or_update_object(b"raw", object_id="o1", type="blob")
        mid = Flowcept.insert_or_update_ml_model({"w": [1, 2]}, object_id="m1", pickle=True)
        did = Flowcept.insert_or_update_dataset(b"rows", object_id="d1")
    assert (oid, mid, did) == ("o1", "m1", "d1")
    raw = Flowcept.db.get_blob_object("o1")
    assert (raw.data, raw.object_type, raw.workflow_id) == (b"raw", "blob", f.current_workflow_id)
    model = Flowcept.db.get_blob_object("m1")
    assert (pickle.loads(model.data), model.object_type) == ({"w": [1, 2]}, "ml_model")
    dataset = Flowcept.db.get_blob_object("d1")
    assert (dataset.data, dataset.object_type) == (b"rows", "dataset")


def test_controller_insert_or_update_torch_model():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    oid = Flowcept.insert_or_update_torch_model(net, object_id="net", custom_metadata={"epoch": 4})
    assert oid == "net"
    blob = Flowcept.db.get_blob_object("net")
    assert blob.object_type == "ml_model"
    assert blob.custom_metadata == {"epoch": 4, "class": "Linear"}
    state = torch.load(io.BytesIO(blob.data))
    assert sorted(state) == ["bias", "weight"]
    assert torch.equal(state["weight"], net.weight.detach())
    assert torch.equal(state["bias"], net.bias.detach())
