"""`deploy up|status|logs|down --target slurm`: the batch job of `targets/slurm.py`, run.

- `up` renders the script into the state directory, submits it with `sbatch`, and waits until
  the job's output has the ready line (or the job ends, or the budget runs out);
- `status` asks `squeue` (and `sacct` once the job has left the queue) and reads the output;
- `logs` prints the job's output file, or one service's step log;
- `down` cancels the job with `scancel`, waits until it has left the queue, and removes what
  `up` wrote (the state file and the job's directory).

Every external command is built in `SlurmCommands`; every failure becomes one line naming the
command that failed.

State: `<state-dir>/slurm/<name>.json` (written atomically) and `<state-dir>/slurm/<name>/`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.base import Strict
from orchestrator.errors import InputError, RuntimeFailure
from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec
from orchestrator.targets.settings import SlurmSettings
from orchestrator.targets.slurm import ENDPOINT_MARK, READY_MARK, batch_script

# squeue states of a job that is still queued or running.
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
_POLL_S = 1.0
_CANCEL_WAIT_S = 120.0


class SlurmJob(Strict):
    """What `up` submitted: enough for `status`, `logs` and `down` without the plan."""

    name: str
    job_id: str
    plan_hash: str
    script: str
    output: str
    run_dir: str
    services: list[str]
    simulate: bool = False
    endpoint: str | None = None
    submitted_at: float


class SlurmCommands:
    """The one place the Slurm command lines are built and run."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)

    def run(self, argv: list[str], extra_env: Mapping[str, str] | None = None) -> str:
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**self.env, **(extra_env or {})},
            )
        except FileNotFoundError:
            raise InputError(
                f"`{argv[0]}` is not installed here",
                "run deploy on a Slurm login node (Debian: apt-get install slurm-client)",
            ) from None
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(
                f"`{' '.join(argv[:2])}` did not answer within 60 s",
                "check that slurmctld is up (scontrol ping)",
            ) from None
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeFailure(
                f"`{' '.join(argv[:2])}` failed: {lines[-1] if lines else 'no output'}",
                "check the cluster with `sinfo` and `scontrol ping`",
            )
        return result.stdout

    def sbatch(self, script: Path, output: Path, run_dir: Path, env: Mapping[str, str]) -> str:
        stdout = self.run(
            [
                "sbatch",
                "--parsable",
                f"--output={output}",
                f"--chdir={run_dir}",
                "--export=ALL",
                str(script),
            ],
            extra_env=env,
        )
        return stdout.strip().split(";")[0]

    def squeue(self, job_id: str) -> tuple[str, str, str] | None:
        """(state, elapsed, nodes) while the job is known to the queue, else None."""
        try:
            stdout = self.run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%T|%M|%N"])
        except RuntimeFailure as error:
            if "Invalid job id" in error.message:  # purged from the controller's memory
                return None
            raise
        for line in stdout.splitlines():
            state, elapsed, nodes = ([*line.strip().split("|"), "", "", ""])[:3]
            return state, elapsed, nodes
        return None

    def sacct(self, job_id: str) -> str | None:
        """The final state from accounting, or None where accounting is off."""
        try:
            stdout = self.run(
                [
                    "sacct",
                    "--noheader",
                    "--parsable2",
                    "--allocations",
                    f"--jobs={job_id}",
                    "--format=State,ExitCode",
                ]
            )
        except RuntimeFailure:
            return None
        line = stdout.strip().splitlines()[:1]
        return line[0].replace("|", " exit ") if line else None

    def scancel(self, job_id: str) -> None:
        self.run(["scancel", job_id])


class SlurmStore:
    def __init__(self, state_dir: Path | None) -> None:
        from orchestrator.state import default_state_dir

        self.directory = (state_dir or default_state_dir()) / "slurm"

    def path(self, name: str) -> Path:
        from orchestrator.naming import check_name

        return self.directory / f"{check_name(name)}.json"

    def run_dir(self, name: str) -> Path:
        return self.directory / name

    def load(self, name: str) -> SlurmJob | None:
        try:
            return SlurmJob.model_validate_json(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise InputError(
                f"state file {self.path(name)} is not valid ({str(error).splitlines()[0]})",
                "cancel the job with scancel and delete the file",
            ) from None

    def save(self, job: SlurmJob) -> None:
        from orchestrator.files import write_atomically

        write_atomically(self.path(job.name), job.model_dump_json(indent=2), durable=True)

    def delete(self, name: str) -> None:
        import shutil

        shutil.rmtree(self.run_dir(name), ignore_errors=True)
        self.path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(path.stem for path in self.directory.glob("*.json"))

    def only(self, name: str | None) -> SlurmJob:
        """The named job, or the only one there is."""
        if name is None:
            names = self.names()
            if len(names) != 1:
                raise InputError(
                    f"{len(names)} Slurm deployments are recorded ({', '.join(names) or 'none'})",
                    "pass --name",
                )
            name = names[0]
        job = self.load(name)
        if job is None:
            raise InputError(
                f"no Slurm deployment named '{name}' in {self.directory}",
                "start it with `deploy up --target slurm`, or pass --state-dir",
            )
        return job


def _output_lines(job: SlurmJob) -> list[str]:
    try:
        return Path(job.output).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _marked(lines: list[str], mark: str) -> str | None:
    for line in lines:
        if line.startswith(mark + " "):
            return line[len(mark) + 1 :].strip()
    return None


def up(
    plan: Plan,
    services: list[ServiceSpec],
    settings: SlurmSettings,
    *,
    simulate: bool,
    state_dir: Path | None,
    timeout_s: float | None,
    keep: bool = False,
    commands: SlurmCommands | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> SlurmJob:
    """Submit the deployment's batch job (unless the same plan already runs) and wait until
    its endpoint answers."""
    from orchestrator.targets.compose.render import compose_project

    commands = commands or SlurmCommands()
    store = SlurmStore(state_dir)
    running = store.load(plan.name)
    if running is not None:
        queued = commands.squeue(running.job_id)
        if queued is not None and queued[0] in ACTIVE and running.plan_hash == plan.plan_hash():
            say(f"job {running.job_id} already runs this plan")
            return _wait_ready(running, commands, store, timeout_s, keep, say)
        if queued is not None and queued[0] in ACTIVE:
            say(f"cancelling job {running.job_id} (an older plan)")
            _cancel(running, commands)
        store.delete(plan.name)
    run_dir = store.run_dir(plan.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / "job.sbatch"
    script.write_text(
        batch_script(plan, services, settings, compose_project(plan), simulate=simulate)
    )
    script.chmod(0o755)
    env = {"DEPLOY_RUN_DIR": str(run_dir)}
    if simulate:  # the simulator is this installation's own
        env["DEPLOY_SIM_PYTHON"] = sys.executable
    job_id = commands.sbatch(script, run_dir / "job-%j.out", run_dir, env)
    if not job_id.isdigit():
        raise RuntimeFailure(f"sbatch answered {job_id!r}, not a job id", "see `squeue`")
    job = SlurmJob(
        name=plan.name,
        job_id=job_id,
        plan_hash=plan.plan_hash(),
        script=str(script),
        output=str(run_dir / f"job-{job_id}.out"),
        run_dir=str(run_dir),
        services=[spec.name for spec in services],
        simulate=simulate,
        submitted_at=time.time(),
    )
    store.save(job)
    say(f"submitted job {job_id}")
    return _wait_ready(job, commands, store, timeout_s, keep, say)


def _budget(job: SlurmJob) -> float:
    """The script's own readiness budget is the bound; this adds time for the queue."""
    text = Path(job.script).read_text(encoding="utf-8")
    budgets = [
        int(value) for value in re.findall(r"^if wait_http \S+ \S+ \d+ \S+ (\d+);", text, re.M)
    ]
    return float(max(budgets, default=600)) + 300.0


def _wait_ready(
    job: SlurmJob,
    commands: SlurmCommands,
    store: SlurmStore,
    timeout_s: float | None,
    keep: bool,
    say: Callable[[str], None],
) -> SlurmJob:
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else _budget(job))
    last_state = ""
    try:
        while True:
            lines = _output_lines(job)
            ready = _marked(lines, READY_MARK)
            if ready is not None:
                job = job.model_copy(update={"endpoint": ready})
                store.save(job)
                return job
            queued = commands.squeue(job.job_id)
            state = queued[0] if queued else "ENDED"
            if state != last_state:
                say(f"job {job.job_id}: {state.lower()}")
                last_state = state
            if state not in ACTIVE:
                tail = "; ".join(lines[-3:]) or "no output"
                raise RuntimeFailure(
                    f"Slurm job {job.job_id} ended before it was ready ({tail})",
                    f"see `deploy logs --target slurm --name {job.name}`",
                )
            if time.monotonic() > deadline:
                if not keep:
                    _cancel(job, commands)
                    store.delete(job.name)
                raise RuntimeFailure(
                    f"Slurm job {job.job_id} was not ready in time (last state {state.lower()})",
                    "raise --timeout, or check the partition with `sinfo`",
                )
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        if not keep:
            _cancel(job, commands)
            store.delete(job.name)
        raise


def _cancel(job: SlurmJob, commands: SlurmCommands) -> None:
    """scancel, then wait until the job has left the queue (its steps got SIGTERM)."""
    commands.scancel(job.job_id)
    deadline = time.monotonic() + _CANCEL_WAIT_S
    while time.monotonic() < deadline:
        queued = commands.squeue(job.job_id)
        if queued is None or queued[0] not in ACTIVE:
            return
        time.sleep(_POLL_S)
    raise RuntimeFailure(
        f"Slurm job {job.job_id} is still in the queue {_CANCEL_WAIT_S:.0f} s after scancel",
        f"check it with `squeue -j {job.job_id}`",
    )


def status(
    name: str | None, state_dir: Path | None, commands: SlurmCommands | None = None
) -> list[dict[str, object]]:
    commands = commands or SlurmCommands()
    store = SlurmStore(state_dir)
    names = [name] if name else store.names()
    rows: list[dict[str, object]] = []
    for each in names:
        job = store.only(each)
        queued = commands.squeue(job.job_id)
        if queued is not None:
            state, elapsed, nodes = queued
        else:
            state, elapsed, nodes = commands.sacct(job.job_id) or "ENDED", "", ""
        lines = _output_lines(job)
        rows.append(
            {
                "name": job.name,
                "job_id": job.job_id,
                "state": state,
                "elapsed": elapsed,
                "nodes": nodes,
                "ready": _marked(lines, READY_MARK) is not None and state == "RUNNING",
                "endpoint": job.endpoint or _marked(lines, ENDPOINT_MARK),
                "services": job.services,
            }
        )
    return rows


def log_path(job: SlurmJob, service: str | None) -> Path:
    if service is None:
        return Path(job.output)
    if service not in job.services:
        raise InputError(
            f"{job.name} has no service {service!r}", f"pick one of {', '.join(job.services)}"
        )
    return Path(job.run_dir) / f"{job.job_id}.{service}.log"


def logs(
    service: str | None,
    name: str | None,
    state_dir: Path | None,
    tail: int | None,
    follow: bool,
    echo: Callable[[str], None],
    commands: SlurmCommands | None = None,
) -> None:
    commands = commands or SlurmCommands()
    job = SlurmStore(state_dir).only(name)
    path = log_path(job, service)
    shown = 0
    while True:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        if shown == 0 and tail is not None:
            shown = max(0, len(lines) - tail)
        for line in lines[shown:]:
            echo(line)
        shown = max(shown, len(lines))
        if not follow:
            return
        queued = commands.squeue(job.job_id)
        if queued is None or queued[0] not in ACTIVE:
            return
        time.sleep(_POLL_S)


def down(
    name: str | None,
    state_dir: Path | None,
    all_jobs: bool = False,
    commands: SlurmCommands | None = None,
) -> list[str]:
    """Cancel the job(s) and remove what `up` wrote; return the names removed."""
    commands = commands or SlurmCommands()
    store = SlurmStore(state_dir)
    if all_jobs:
        names = store.names()
    elif name is None:
        names = [store.only(None).name]
    else:
        names = [name] if store.load(name) else []
    for each in names:
        job = store.load(each)
        if job is None:
            continue
        queued = commands.squeue(job.job_id)
        if queued is not None and queued[0] in ACTIVE:
            _cancel(job, commands)
        store.delete(each)
    return names
