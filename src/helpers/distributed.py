"""The inference grid (notebook 03) on a Dask distributed cluster.

One task per scan: load the scan and its frames, encode each slice once, do
every unfinished organ x approach run of the scan, save masks and result rows
(:func:`helpers.grid.run_scan`), so feature reuse stays within a task. Tasks
write into the shared output folder with the same atomic writes as the serial
path (mask first, result JSON last), so the resumable store works across
workers and restarts: a task that is lost with its worker, retried, or run
again later only does the runs whose JSON is missing.

``params.scheduler`` chooses where the tasks run:

* ``"none"`` (default): no Dask; notebook 03 calls :func:`helpers.grid.run_grid`;
* ``"local"``: a :class:`~distributed.LocalCluster` of ``params.workers``
  single-threaded worker processes on this machine (127.0.0.1);
* an address such as ``tcp://host:8786``: an existing cluster (``dask
  scheduler`` + ``dask worker``, dask-jobqueue on SLURM, dask-kubernetes,
  ...). Every worker must see ``outputs/``, the dataset and the checkpoint
  cache at the same paths as the client (a shared filesystem).

GPU workers: one worker process per GPU, each with one thread and its own
``CUDA_VISIBLE_DEVICES``, as dask-cuda makes them (``dask cuda worker
tcp://host:8786`` on each GPU node, or ``Client(LocalCUDACluster())`` in a
Python session on one machine); with ``device: auto`` each worker then uses
its GPU. dask-cuda is not a dependency of this package. (Plain ``dask worker
--nworkers N`` on a multi-GPU node would put every worker on GPU 0.)

Each worker process builds the predictor once (:func:`helpers.grid.load_model`,
cached per process) and runs one scan at a time (a lock makes this so even on
workers with several threads). A task that raises is retried
``params.max_retries`` times; one that still fails (or whose worker keeps
dying, see the scheduler's ``allowed-failures``) becomes failed rows for the
scan's unfinished runs and the other scans go on. The rows are gathered into
the same ``results.csv`` as the serial path (:func:`helpers.grid.write_results`).
"""

from __future__ import annotations

import json
import threading
import traceback
import uuid

import pandas as pd
import torch
from distributed import Client, as_completed
from tqdm.auto import tqdm

from helpers import grid
from helpers.inference import ModelInfo, StudyVideoPredictor
from helpers.params import StudyParams

#: The predictor of this worker process: ``(model key, (predictor, info))``.
_MODEL: tuple[tuple, tuple[StudyVideoPredictor, ModelInfo]] | None = None
#: Held while a task uses the predictor: one scan at a time per process.
_LOCK = threading.Lock()


def connect(scheduler: str, workers: int) -> Client:
    """A Dask client for ``params.scheduler`` / ``params.workers``.

    ``"local"`` starts a LocalCluster on 127.0.0.1 with ``workers`` worker
    processes of one thread each (closed with the client; dashboard on a free
    port); any other value except ``"none"`` is the address of a running
    scheduler (``workers`` is then ignored: the cluster has what it has).
    """
    if scheduler == "none":
        raise ValueError("scheduler 'none' runs the grid in-process (helpers.grid.run_grid); no client needed")
    if scheduler == "local":
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return Client(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
    return Client(scheduler)


def _model_key(params: StudyParams) -> tuple:
    return (params.model, params.checkpoint, params.image_size, params.device, params.seed, str(params.cache_dir))


def _worker_model(params: StudyParams) -> tuple[StudyVideoPredictor, ModelInfo]:
    """This process's predictor for ``params``, built on first use (call with ``_LOCK`` held)."""
    global _MODEL
    key = _model_key(params)
    if _MODEL is None or _MODEL[0] != key:
        _MODEL = None  # release the old model before building another
        _MODEL = (key, grid.load_model(params))
    return _MODEL[1]


def _worker_model_info(params: StudyParams) -> ModelInfo:
    with _LOCK:
        return _worker_model(params)[1]


def model_info(client: Client, params: StudyParams) -> ModelInfo:
    """The :class:`~helpers.inference.ModelInfo` of the workers' predictor (for the report header).

    Builds the predictor on one worker (downloading the checkpoint there once,
    before the scan tasks start).
    """
    return client.submit(_worker_model_info, params, pure=False).result()


def scan_task(scan_id: str, runs: pd.DataFrame, params: StudyParams, torch_threads: int | None = 1) -> list[dict]:
    """One scan's unfinished runs on a worker; returns all its result rows.

    ``torch_threads`` sets torch's intra-op threads in the task's thread
    (``None`` keeps the worker's setting).
    """
    with _LOCK:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        predictor, info = _worker_model(params)
        return grid.run_scan(scan_id, runs, params, predictor, info, progress=False)


def _failed_scan_rows(scan_runs: pd.DataFrame, params: StudyParams, exc: BaseException, tb: str) -> list[dict]:
    """Rows of a scan whose task failed: finished runs from their JSON, the others failed."""
    rows = []
    for run in scan_runs.to_dict("records"):
        done = grid.result_path(params.layout, run["scan_id"], run["organ"], run["approach"], run["negatives"])
        try:
            rows.append(json.loads(done.read_text()))
            continue
        except (OSError, ValueError):
            pass
        rows.append(grid.failed_row(run, params.model, exc, tb))
    return rows


def run_grid_distributed(
    params: StudyParams,
    runs: pd.DataFrame,
    client: Client,
    *,
    torch_threads: int | None = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the grid with one task per scan on ``client``'s cluster and write ``results.csv``.

    Prints the dashboard link, shows a progress bar over finished scans and
    returns the same table as :func:`helpers.grid.run_grid`. ``torch_threads``
    is torch's intra-op threads per task: 1 suits single-threaded workers with
    a core each (the local cluster) and GPU workers; ``None`` keeps each
    worker's own setting.
    """
    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
    token = uuid.uuid4().hex[:8]
    scan_runs = {s: g.reset_index(drop=True) for s, g in runs.groupby("scan_id", sort=True)}
    futures = {
        client.submit(
            scan_task,
            scan_id,
            group,
            params,
            torch_threads,
            key=f"scan-{scan_id}-{token}",
            retries=params.max_retries,
            pure=False,
        ): scan_id
        for scan_id, group in scan_runs.items()
    }
    rows: list[dict] = []
    for future in tqdm(as_completed(futures), total=len(futures), desc="scans", disable=not progress):
        scan_id = futures[future]
        try:
            rows += future.result()
        except Exception as exc:  # noqa: BLE001 - a scan that fails after its retries is recorded
            tb = "".join(traceback.format_exception(exc, limit=5))
            rows += _failed_scan_rows(scan_runs[scan_id], params, exc, tb)
        future.release()
    return grid.write_results(rows, params.layout)
