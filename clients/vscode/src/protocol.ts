/**
 * The wire contract as the extension sees it: the daemon's JSON documents (README: Protocol in brief), its
 * error codes and where its socket is. The daemon's pydantic models are the source of truth
 * (`rpc.discover`); these types only name the fields this extension reads.
 */

import * as os from 'node:os';
import * as path from 'node:path';

/** The daemon API version this extension speaks (compared with `daemon.info`'s `apiVersion`). */
export const API_VERSION = 1;

/** JSON-RPC error codes the extension treats specially. */
export const ErrorCode = {
  InvalidParams: -32602,
  NotFound: -32001,
  VaultLocked: -32020,
  WrongPassphrase: -32021,
} as const;

/** A chip's colour; `checking`: its state is not known yet (the database before its first probe). */
export type Level = 'ok' | 'info' | 'warn' | 'bad' | 'off' | 'checking';
export type ChipName = 'env' | 'vault' | 'db' | 'llm' | 'runs';
export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type VaultState = 'uninitialized' | 'locked' | 'unlocked';

/** One header chip: the daemon's words for one of the five signals. */
export interface Chip {
  name: ChipName;
  text: string;
  level: Level;
  tooltip: string;
  href: string;
}

export interface LastRun {
  id: string;
  status: string;
  startedAt: string;
  completedAt: string | null;
  ageMs: number;
  errorMessage: string | null;
}

/** One of the active runs, named while they are few (up to 3). */
export interface ActiveRun {
  id: string;
  title: string | null;
  status: string;
}

export interface RunsSection {
  active: number;
  busy: boolean;
  pending: number;
  total: number;
  last: LastRun | null;
  activeRuns?: ActiveRun[]; // empty when there are more than 3 (older daemons: absent)
}

export interface VaultSection {
  state: VaultState;
  autoLockRemainingMs: number | null;
}

export interface DbSection {
  connected: boolean;
  checking?: boolean; // no answer yet from the first probe (older daemons: absent)
  type: 'sqlite' | 'postgres' | null;
  env: string;
  readOnly: boolean;
  latencyMs: number | null;
  error: string | null;
  checkedAt: string | null;
  warnings?: string[]; // what a read-only role could still do (PROD)
}

export interface LlmBackend {
  name: string;
  kind: 'ollama' | 'openai';
  url: string;
  model: string | null;
  online: boolean;
  latencyMs: number | null;
  models: string[];
  error: string | null;
  checkedAt: string | null;
}

/** `llm.status`, `llm.probe` and the document's `llm` section. */
export interface LlmSection {
  online: number;
  total: number;
  backends: LlmBackend[];
}

export interface ApiSection {
  enabled: boolean;
  url: string | null;
  port: number | null;
  socket: string;
}

/** What `status.get` and `status.changed` carry. */
export interface StatusDocument {
  env: 'DEV' | 'PROD';
  generatedAt: string;
  runs: RunsSection;
  vault: VaultSection;
  db: DbSection;
  llm: LlmSection;
  api: ApiSection;
  warnings: string[];
  chips: Chip[];
}

/** `status.subscribe`'s answer, and the params of each `status.changed` notification. */
export interface StatusSnapshot {
  seq: number;
  status: StatusDocument;
}

/** One row of `runs.list`. */
export interface RunRow {
  id: string;
  workspace: string;
  status: RunStatus | 'corrupt';
  title: string | null;
  startedAt: string | null;
  completedAt: string | null;
  updatedAt: string | null;
  stepCount: number;
  errorMessage: string | null;
}

/** `runs.list`: newest first; `nextBefore` pages on. */
export interface RunPage {
  runs: RunRow[];
  nextBefore: string | null;
}

export interface StepView {
  number: number;
  name: string;
  folder: string;
  status: string;
  startedAt: string | null;
  completedAt: string | null;
  errorMessage: string | null;
}

/** `runs.get`: the run's record, its workspace, and its steps when asked. */
export interface RunView {
  id: string;
  title: string | null;
  status: RunStatus;
  workspace: string;
  startedAt: string;
  completedAt: string | null;
  errorMessage: string | null;
  stepCount: number;
  steps?: StepView[] | null;
}

/** `vault.status`, and the answer of `vault.lock` / `vault.unlock`. */
export interface VaultStatus {
  state: VaultState;
  autoLockRemainingMs: number | null;
  secrets: number | null;
  retryAfterMs: number;
}

/** The fields of `daemon.info` the extension reads. */
export interface DaemonInfo {
  version: string;
  apiVersion: number;
  pid: number;
  socket: string;
}

/**
 * `$XDG_RUNTIME_DIR/simpleaide/daemon.sock` when that variable is an absolute path, else
 * `/tmp/simpleaide-<uid>/daemon.sock`: the rule of the daemon and of the CLI (paths.py),
 * written a third time because clients share the wire protocol only.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) {
    return path.join(runtime, 'simpleaide', 'daemon.sock');
  }
  return `/tmp/simpleaide-${os.userInfo().uid}/daemon.sock`;
}

/** The socket to talk to: the setting, else `$SIMPLEAIDE_SOCKET`, else the default rule. A
 * leading `~` is the home folder, and a relative path is relative to it: the extension host's
 * working folder means nothing to the user. */
export function resolveSocketPath(
  setting: string,
  env: NodeJS.ProcessEnv = process.env,
  home: string = os.homedir(),
): string {
  const chosen = setting.trim() || env.SIMPLEAIDE_SOCKET || defaultSocketPath(env);
  const expanded = chosen === '~' || chosen.startsWith('~/') ? home + chosen.slice(1) : chosen;
  return path.resolve(home, expanded);
}
