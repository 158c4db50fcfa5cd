"""The method table: every JSON-RPC method name, its contract, and the service call behind it.

Built explicitly from the service objects (no global registry), in one place, so the table,
the OpenRPC document and the dispatcher can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from simpleaided.domain import api
from simpleaided.domain.models import RunStatus, StepStatus
from simpleaided.domain.status import DbSection, LlmSection, StatusDocument
from simpleaided.services.events import EventHub
from simpleaided.services.retention import prune_runs
from simpleaided.services.runs import RunService
from simpleaided.services.status import StatusService
from simpleaided.services.vault import VaultService
from simpleaided.transports.openrpc import openrpc_document
from simpleaided.transports.rpc import Method


class DaemonFacts(Protocol):
    """What ``daemon.info`` reports, provided by the app layer."""

    def info(self) -> dict[str, Any]: ...


class Probed(Protocol):
    """A status section kept by periodic probes (the database, the LLM backends)."""

    def section(self) -> dict[str, Any]: ...

    async def probe(self) -> dict[str, Any]: ...


def build_methods(
    runs: RunService,
    status: StatusService,
    events: EventHub,
    daemon: DaemonFacts,
    *,
    vault: VaultService,
    database: Probed,
    llm: Probed,
) -> list[Method]:
    """Every method the daemon serves."""
    methods: list[Method] = []
    described: list[dict[str, Any]] = []  # the OpenRPC document, once made

    def add(
        name: str, params: type[api.Params], result: Any, summary: str
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            methods.append(Method(name, summary, params, result, handler))
            return handler

        return register

    # daemon ---------------------------------------------------------------------------------

    @add("daemon.ping", api.NoParams, str, 'Answer "pong": the daemon is alive.')
    def ping(p: api.NoParams, conn: Any) -> str:
        return "pong"

    @add("daemon.info", api.NoParams, api.DaemonInfo, "Version, pid, socket, uptime, warnings.")
    def info(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return daemon.info()

    @add("rpc.discover", api.NoParams, dict, "This API as an OpenRPC document.")
    def discover(p: api.NoParams, conn: Any) -> dict[str, Any]:
        if not described:  # made on first use: generating the schemas slows every start
            described.append(openrpc_document(methods))
        return described[0]

    # workspaces -----------------------------------------------------------------------------

    @add("workspaces.list", api.NoParams, list[api.WorkspaceInfo], "Served workspaces.")
    def workspaces_list(p: api.NoParams, conn: Any) -> list[dict[str, Any]]:
        return runs.list_workspaces()

    @add("workspaces.add", api.WorkspaceParams, api.WorkspaceInfo, "Serve a workspace.")
    async def workspaces_add(p: api.WorkspaceParams, conn: Any) -> dict[str, Any]:
        return await runs.add_workspace(p.path)

    @add("workspaces.remove", api.WorkspaceParams, dict, "Stop serving a workspace (files stay).")
    async def workspaces_remove(p: api.WorkspaceParams, conn: Any) -> dict[str, Any]:
        return await runs.remove_workspace(p.path)

    # status ---------------------------------------------------------------------------------

    @add("status.get", api.ScopeParams, StatusDocument, "The status document, from memory.")
    def status_get(p: api.ScopeParams, conn: Any) -> orjson.Fragment:
        return status.encoded(p.workspace)

    @add(
        "status.subscribe",
        api.ScopeParams,
        api.StatusSnapshot,
        "The status document and its seq; then status.changed notifications on this connection.",
    )
    def status_subscribe(p: api.ScopeParams, conn: Any) -> dict[str, Any]:
        return events.subscribe_status(conn, runs.scope(p.workspace))

    @add("status.unsubscribe", api.NoParams, api.Unsubscribed, "Stop status.changed.")
    def status_unsubscribe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"unsubscribed": events.unsubscribe_status(conn)}

    # runs -----------------------------------------------------------------------------------

    @add("runs.create", api.CreateRunParams, api.RunView, "Create a pending run.")
    async def runs_create(p: api.CreateRunParams, conn: Any) -> dict[str, Any]:
        return await runs.create_run(p.workspace, p.title, p.owner_pid)

    @add("runs.get", api.GetRunParams, api.RunView, "A run (with its steps if asked).")
    async def runs_get(p: api.GetRunParams, conn: Any) -> dict[str, Any]:
        return await runs.get_run(p.run_id, steps=p.steps)

    @add("runs.list", api.ListRunsParams, api.RunPage, "Runs, newest first, paginated.")
    def runs_list(p: api.ListRunsParams, conn: Any) -> dict[str, Any]:
        return runs.list_runs(p)

    @add(
        "runs.complete",
        api.CompleteRunParams,
        api.RunView,
        "Mark a running run completed; refused while a step is open, unless force (which "
        "closes them).",
    )
    async def runs_complete(p: api.CompleteRunParams, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.COMPLETED, force=p.force)

    @add("runs.fail", api.FailRunParams, api.RunView, "Mark a running run failed.")
    async def runs_fail(p: api.FailRunParams, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.FAILED, p.error_message)

    @add("runs.cancel", api.RunRef, api.RunView, "Cancel a pending or running run.")
    async def runs_cancel(p: api.RunRef, conn: Any) -> dict[str, Any]:
        return await runs.finish_run(p.run_id, RunStatus.CANCELLED)

    @add("runs.delete", api.DeleteRunParams, api.Deleted, "Delete a run (running: with force).")
    async def runs_delete(p: api.DeleteRunParams, conn: Any) -> dict[str, Any]:
        return await runs.delete_run(p.run_id, force=p.force)

    @add("runs.prune", api.PruneRunsParams, api.PruneResult, "Delete old finished runs.")
    async def runs_prune(p: api.PruneRunsParams, conn: Any) -> dict[str, Any]:
        return await prune_runs(runs, p)

    @add("runs.activeCount", api.ScopeParams, int, "How many runs are running.")
    def runs_active_count(p: api.ScopeParams, conn: Any) -> int:
        return runs.active_count(p.workspace)

    @add("runs.latest", api.ScopeParams, api.LatestRun | None, "The most recently started run.")
    def runs_latest(p: api.ScopeParams, conn: Any) -> dict[str, Any] | None:
        return runs.latest(p.workspace)

    @add(
        "runs.subscribe",
        api.RunScopeParams,
        api.RunSubscribed,
        "Stream run.event notifications (one run, or all) on this connection.",
    )
    def runs_subscribe(p: api.RunScopeParams, conn: Any) -> dict[str, Any]:
        return events.subscribe_runs(conn, p.run_id)

    @add("runs.unsubscribe", api.NoParams, api.Unsubscribed, "Stop run.event notifications.")
    def runs_unsubscribe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"unsubscribed": events.unsubscribe_runs(conn)}

    @add("runs.busy", api.ScopeParams, bool, "Whether any run is running.")
    def runs_busy(p: api.ScopeParams, conn: Any) -> bool:
        return runs.active_count(p.workspace) > 0

    # steps ----------------------------------------------------------------------------------

    @add("steps.create", api.CreateStepParams, api.StepChange, "Add the next step to a run.")
    async def steps_create(p: api.CreateStepParams, conn: Any) -> dict[str, Any]:
        return await runs.create_step(p.run_id, p.name, start=p.start)

    def step_move(name: str, target: StepStatus, summary: str) -> None:
        @add(name, api.StepRef, api.StepChange, summary)
        async def move(p: api.StepRef, conn: Any) -> dict[str, Any]:
            return await runs.transition_step(p.run_id, p.step, target)

    step_move("steps.start", StepStatus.RUNNING, "Start a pending step.")
    step_move("steps.complete", StepStatus.COMPLETED, "Complete a running step.")
    step_move("steps.skip", StepStatus.SKIPPED, "Skip a running step.")

    @add("steps.fail", api.FailStepParams, api.StepChange, "Fail a step (and its run, by default).")
    async def steps_fail(p: api.FailStepParams, conn: Any) -> dict[str, Any]:
        return await runs.transition_step(
            p.run_id,
            p.step,
            StepStatus.FAILED,
            error_message=p.error_message,
            fail_run=p.fail_run,
        )

    @add("steps.list", api.RunRef, list[api.StepView], "The steps of a run.")
    async def steps_list(p: api.RunRef, conn: Any) -> list[dict[str, Any]]:
        return await runs.list_steps(p.run_id)

    @add("steps.deleteFrom", api.DeleteStepsParams, api.RunView, "Rerun from a checkpoint.")
    async def steps_delete_from(p: api.DeleteStepsParams, conn: Any) -> dict[str, Any]:
        return await runs.delete_steps_from(p.run_id, p.from_step)

    # artifacts ------------------------------------------------------------------------------

    @add("artifacts.put", api.PutArtifactParams, api.ArtifactInfo, "Save a step's artifact.")
    async def artifacts_put(p: api.PutArtifactParams, conn: Any) -> dict[str, Any]:
        return await runs.put_artifact(p)

    @add("artifacts.get", api.GetArtifactParams, api.ArtifactContent, "Read an artifact.")
    async def artifacts_get(p: api.GetArtifactParams, conn: Any) -> dict[str, Any]:
        return await runs.get_artifact(p)

    @add("artifacts.list", api.ListArtifactsParams, list[api.ArtifactInfo], "List artifacts.")
    async def artifacts_list(p: api.ListArtifactsParams, conn: Any) -> list[dict[str, Any]]:
        return await runs.list_artifacts(p.run_id, p.step)

    # vault ----------------------------------------------------------------------------------
    # Passphrases and values arrive in params: pydantic's errors never echo input (see rpc),
    # and nothing here logs params.

    @add("vault.status", api.NoParams, api.VaultStatus, "Locked or not, and when it locks.")
    def vault_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return vault.status()

    @add("vault.init", api.VaultInitParams, api.VaultStatus, "Create the vault (then unlocked).")
    async def vault_init(p: api.VaultInitParams, conn: Any) -> dict[str, Any]:
        await vault.init(p.passphrase)
        return vault.status()

    @add("vault.unlock", api.VaultUnlockParams, api.VaultStatus, "Unlock with the passphrase.")
    async def vault_unlock(p: api.VaultUnlockParams, conn: Any) -> dict[str, Any]:
        await vault.unlock(p.passphrase, p.ttl_seconds)
        return vault.status()

    @add("vault.lock", api.NoParams, api.VaultStatus, "Lock now: forget the key.")
    def vault_lock(p: api.NoParams, conn: Any) -> dict[str, Any]:
        vault.lock()
        return vault.status()

    @add(
        "vault.changePassphrase",
        api.VaultPassphraseParams,
        api.VaultStatus,
        "Re-key the vault under a new passphrase.",
    )
    async def vault_passwd(p: api.VaultPassphraseParams, conn: Any) -> dict[str, Any]:
        await vault.change_passphrase(p.passphrase, p.new_passphrase)
        return vault.status()

    @add("vault.set", api.SetSecretParams, api.SecretStored, "Store a secret (unlocked only).")
    async def vault_set(p: api.SetSecretParams, conn: Any) -> dict[str, Any]:
        return {"name": p.name, "replaced": await vault.set(p.name, p.value)}

    @add("vault.get", api.SecretRef, api.SecretValue, "Read a secret (unlocked only).")
    def vault_get(p: api.SecretRef, conn: Any) -> dict[str, Any]:
        return {"name": p.name, "value": vault.get(p.name)}

    @add("vault.list", api.NoParams, api.SecretNames, "The secrets' names (unlocked only).")
    def vault_list(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"names": vault.names()}

    @add("vault.delete", api.SecretRef, api.SecretDeleted, "Delete a secret (unlocked only).")
    async def vault_delete(p: api.SecretRef, conn: Any) -> dict[str, Any]:
        await vault.delete(p.name)
        return {"name": p.name, "deleted": True}

    # database and LLM backends --------------------------------------------------------------

    @add("db.status", api.NoParams, DbSection, "The active profile's database, last probe.")
    def db_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return database.section()

    @add("llm.status", api.NoParams, LlmSection, "The LLM backends, last probe.")
    def llm_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return llm.section()

    @add("llm.probe", api.NoParams, LlmSection, "Probe every LLM backend now.")
    async def llm_probe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return await llm.probe()

    return methods
