"""Dump, read (as records or DataFrames) and delete JSONL buffer files."""

from provwh import Flowcept, flowcept_task


@flowcept_task
def attention(layer):
    return {"attention": [layer * 0.1, layer * 0.2]}


if __name__ == "__main__":
    with Flowcept(workflow_name="demo") as f:
        for layer in range(3):
            attention(layer)
        f.dump_buffer()  # uses the settings path (flowcept_buffer.jsonl)
        f.dump_buffer("my_buffer.jsonl")  # a custom path

    msgs = Flowcept.read_buffer_file("flowcept_buffer.jsonl")
    df_raw = Flowcept.read_buffer_file("flowcept_buffer.jsonl", return_df=True, normalize_df=False)
    df_norm = Flowcept.read_buffer_file("flowcept_buffer.jsonl", return_df=True, normalize_df=True)
    print("messages:", len(msgs))
    print("normalized has generated.attention:", "generated.attention" in df_norm.columns)
    print("raw keeps generated as objects:", "generated" in df_raw.columns)

    Flowcept.delete_buffer_file("my_buffer.jsonl")
    Flowcept.delete_buffer_file()  # the default path
