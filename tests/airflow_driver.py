"""Runs Airflow in its own process for tests/test_airflow.py (Airflow configures itself, its logging and its
database from the environment at import): ``bag DAGS`` prints each DAG's task ids and the import errors;
``test DAGS DAG_ID CONF_JSON`` runs one DAG run with ``dag.test()`` and prints its state and task states. The last
line of stdout is JSON."""

from __future__ import annotations

import json
import sys
import time

from airflow.dag_processing.dagbag import DagBag


def main() -> None:
    mode, folder = sys.argv[1], sys.argv[2]
    bag = DagBag(dag_folder=folder)
    if mode == "bag":
        print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                          "dags": {d: [t.task_id for t in bag.dags[d].tasks] for d in bag.dag_ids}}))
        return
    dag = bag.get_dag(sys.argv[3])
    started = time.time()
    run = dag.test(run_conf=json.loads(sys.argv[4]))
    tasks = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number,
                          "result": ti.xcom_pull(task_ids=ti.task_id) if str(ti.state) == "success" else None}
             for ti in run.get_task_instances()}
    print(json.dumps({"state": str(run.state), "seconds": time.time() - started, "tasks": tasks}, default=str))


if __name__ == "__main__":
    main()
