"""The optional Flowcept arguments: names, subtype, campaign and workflow arguments."""

from provwh import Flowcept, flowcept_task


@flowcept_task(output_names="accuracy")
def train_model(epochs: int, lr: float) -> float:
    return round(1 - 1 / (1 + epochs * lr), 4)


if __name__ == "__main__":
    with Flowcept(
        workflow_name="training_workflow",
        workflow_subtype="ml_workflow",
        campaign_id="experiment_42",
        interceptors=["instrumentation"],
        workflow_args={"epochs_list": [10, 100], "learning_rates": [0.1, 0.01, 0.001]},
    ):
        for epochs in (10, 100):
            for lr in (0.1, 0.01, 0.001):
                train_model(epochs, lr)
    print("tasks:", sum(m["type"] == "task" for m in Flowcept.read_buffer_file()))
