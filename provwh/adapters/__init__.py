"""Capture for other frameworks: Dask (``dask``), PyTorch (``torch``), agent tools (``agent``),
and the observers of tools that keep their own records: MLflow (``mlflow``) and TensorBoard
(``tensorboard``).

Each framework module imports its framework, so none is imported by ``import provwh``:
``flowcept_torch`` and ``agent_flowcept_task`` load on first use, and
``Flowcept(interceptors=["dask"])`` loads the Dask adapter when it starts. The MLflow and
TensorBoard adapters read those tools' files with the standard library (``polling``,
``tfevents``), importing neither tool.
"""
