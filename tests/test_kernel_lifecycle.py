"""Shutting the kernel down closes the cluster the panel launched: no process survives."""

import psutil
import pytest
from helpers import is_interpreter_helper
from jupyter_client.manager import start_new_kernel

LAUNCH = """
from elastic_nb import ControlPanel
panel = ControlPanel(minimum=2, maximum=2)
panel.launch()
panel.cluster.wait_for_workers(2)
import os
print(os.getpid())
"""


def _run(client, code):
    outputs = []
    reply = client.execute_interactive(
        code, timeout=120, output_hook=lambda msg: outputs.append(msg["content"])
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(o.get("text", "") for o in outputs)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["shutdown request", "panel.close()"])
def test_the_kernel_going_away_takes_its_cluster_with_it(how):
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        kernel = psutil.Process(int(_run(client, LAUNCH).split()[-1]))
        workers = [
            p
            for p in kernel.children(recursive=True)
            if "multiprocessing" in " ".join(p.cmdline()) and not is_interpreter_helper(p)
        ]
        assert len(workers) >= 2  # real worker processes under the kernel
        if how == "panel.close()":
            _run(client, "panel.close()")
            _, alive = psutil.wait_procs(workers, timeout=30)
            assert alive == []
            assert kernel.is_running()
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # a polite shutdown request, as Jupyter sends
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
