/**
 * A real `simpleaided` for the tests, in a sandbox of its own (HOME and the XDG folders in a
 * fresh temporary folder, no SIMPLEAIDE_* variables), plus `waitFor`, the polling helper that
 * replaces sleeps: tests wait for a condition, with a deadline.
 */

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DaemonConnection } from '../src/connection';

/** The daemon's executable: `$SIMPLEAIDED`, else the repository's `.venv`. */
export function daemonExecutable(): string {
  const repo = path.resolve(__dirname, '..', '..', '..', '..'); // out/test → clients/vscode → repo
  return process.env.SIMPLEAIDED || path.join(repo, '.venv', 'bin', 'simpleaided');
}

// A cheap vault key derivation, and a short wait after a wrong passphrase.
const CONFIG = `[vault]
kdf_memory_kib = 8192
kdf_iterations = 1
kdf_lanes = 1
failed_unlock_delay_seconds = 0.05
`;

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((child) => child.kill('SIGKILL')));

/** Polls `check` until it returns a value other than `undefined`/`false`, or fails after
 * `timeoutMs` saying what it waited for. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Temporary folders for a daemon: its environment, its socket and a workspace. Several
 * daemons may run in one sandbox, one after another, on the same socket. With
 * `missingWorkspace`, the config serves a workspace that does not exist, so that the daemon
 * reports a warning (`workspace … is not served: …`); `config` is added to the config file. */
export class Sandbox {
  readonly root: string;
  readonly socketPath: string;
  readonly workspace: string;
  readonly env: NodeJS.ProcessEnv;
  readonly missingWorkspace: string;

  constructor(options: { missingWorkspace?: boolean; config?: string } = {}) {
    // A short path: AF_UNIX socket paths are limited to 108 bytes.
    this.root = fs.mkdtempSync('/tmp/sav-');
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith('SIMPLEAIDE_')) env[name] = value;
    }
    for (const name of ['HOME', 'XDG_STATE_HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_RUNTIME_DIR']) {
      env[name] = path.join(this.root, name.toLowerCase());
      fs.mkdirSync(env[name] as string, { mode: 0o700 });
    }
    this.env = env;
    const config = path.join(this.root, 'xdg_config_home', 'simpleaide');
    fs.mkdirSync(config, { mode: 0o700 });
    this.missingWorkspace = path.join(this.root, 'missing');
    const workspaces = options.missingWorkspace ? `workspaces = [${JSON.stringify(this.missingWorkspace)}]\n` : '';
    fs.writeFileSync(path.join(config, 'config.toml'), workspaces + CONFIG + (options.config ?? ''), {
      mode: 0o600,
    });
    fs.mkdirSync(path.join(this.root, 'run'), { mode: 0o700 });
    this.socketPath = path.join(this.root, 'run', 'd.sock');
    this.workspace = path.join(this.root, 'ws');
    fs.mkdirSync(this.workspace, { mode: 0o700 });
  }

  /** Starts a daemon on the sandbox's socket and resolves once it accepts connections. */
  async start(timeoutMs = 15000): Promise<Daemon> {
    const child = spawn(daemonExecutable(), ['--socket', this.socketPath], {
      env: this.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(child);
    const daemon = new Daemon(child);
    await waitFor(
      'the daemon to accept connections',
      async () => {
        if (daemon.exited) {
          throw new Error(`simpleaided exited (${daemon.exitStatus}) before answering:\n${daemon.stderr}`);
        }
        try {
          (await DaemonConnection.open(this.socketPath, 500)).dispose();
          return true;
        } catch {
          return false;
        }
      },
      timeoutMs,
    ).catch(async (err: unknown) => {
      await daemon.stop();
      throw err;
    });
    return daemon;
  }

  cleanUp(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A running daemon process. */
export class Daemon {
  stderr = '';
  exitStatus: string | undefined;
  private readonly exit: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    child.stderr?.setEncoding('utf-8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = signal ?? `exit code ${code}`;
        running.delete(child);
        resolve();
      });
      child.once('error', (err) => {
        this.exitStatus = `not started: ${err.message}`; // no 'exit' follows
        running.delete(child);
        resolve();
      });
    });
  }

  get exited(): boolean {
    return this.exitStatus !== undefined;
  }

  /** SIGSTOP: the daemon keeps its socket, and the kernel accepts connections, but nothing
   * answers. */
  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  /** SIGTERM, and waits for the exit (SIGKILL after 10 s). */
  async stop(): Promise<void> {
    if (this.exited) {
      return;
    }
    this.child.kill('SIGTERM');
    this.resume(); // a paused daemon acts on the SIGTERM only once it runs again
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    await this.exit;
    clearTimeout(killer);
  }
}
