"""A PyTorch model whose forward calls are provenance tasks (the capture document's example).

Run with ``pip install torch`` (the CPU build is enough). Each ``model(x)`` call is a task with
the input and output tensors described by shape and dtype; the model's profile (parameter
counts, modules) lands in the workflow record.
"""

import torch
import torch.nn as nn
import torch.optim as optim

from provwh import Flowcept
from provwh.adapters.torch import FlowceptEpochLoop, flowcept_torch


# Instrument the model with @flowcept_torch
@flowcept_torch
class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 1)

    def forward(self, x):
        return self.fc(x)


if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(100, 10)  # 100 samples, 10 features
    y = torch.randn(100, 1)  # 100 targets

    with Flowcept(workflow_name="pytorch_model"):
        model = MyNet(custom_metadata={"experiment": "demo"})
        optimizer = optim.SGD(model.parameters(), lr=0.01)
        loss_fn = nn.MSELoss()

        epochs = FlowceptEpochLoop(3)  # one task per epoch; forward calls are its children
        for epoch in epochs:
            optimizer.zero_grad()
            out = model(x)  # provenance captured here
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            epochs.end_iter({"loss": loss.item()})
            print(f"Epoch {epoch} - Loss {loss.item():.4f}")

    workflow = Flowcept.read_buffer_file()[0]
    profile = workflow["custom_metadata"]["model_profiles"]["MyNet"]
    print("parameters:", profile["n_params"])
