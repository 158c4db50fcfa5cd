/**
 * The extension's logic: keep a subscription to the daemon, render the status bar from each
 * status document, ping the daemon to notice it stop answering, reconnect with backoff when it
 * goes away, and run the click commands. It talks to VS Code only through the seam
 * (`StatusBar`, `Ui`, `Timer`).
 */

import { DaemonConnection, NotConnectedError, REQUEST_TIMEOUT_MS } from './connection';
import {
  API_VERSION,
  DaemonInfo,
  LlmSection,
  RunPage,
  RunView,
  StatusDocument,
  VaultStatus,
} from './protocol';
import { realTimer, StatusBar, Timer, Ui } from './seam';
import { itemsFor, llmTable, runLines, runPickItems, statusLines, unreachableItems } from './statusbar';

/** Reconnection delays: 250 ms, doubling, capped (5 s by default); reset once a connection has
 * stayed up a while. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly firstMs = 250,
    private readonly capMs = 5000,
  ) {
    this.nextMs = firstMs;
  }

  next(): number {
    const delay = Math.min(this.nextMs, this.capMs);
    this.nextMs = Math.min(this.nextMs * 2, this.capMs);
    return delay;
  }

  reset(): void {
    this.nextMs = this.firstMs;
  }
}

export interface ControllerOptions {
  socketPath: string;
  statusBar: StatusBar;
  ui: Ui;
  timer?: Timer;
  /** The longest wait between reconnection attempts (tests may shorten it). */
  maxDelayMs?: number;
  /** How long one connection attempt may take. */
  connectTimeoutMs?: number;
  /** How long a request may wait for its answer (5 s by default). */
  requestTimeoutMs?: number;
  /** How often a connected daemon is pinged to notice that it stopped answering (15 s). */
  pingIntervalMs?: number;
  /** How long a connection must stay up before the backoff starts over (5 s). */
  stableAfterMs?: number;
}

const RUNS_SHOWN = 30;

// vault.unlock may take long and still be answered: after wrong passphrases the daemon waits up
// to 30 s before trying, and the key derivation is costly. The pings meanwhile still notice a
// daemon that stops answering.
const UNLOCK_TIMEOUT_MS = 120_000;

export class StatusController {
  readonly socketPath: string;
  private readonly bar: StatusBar;
  private readonly ui: Ui;
  private readonly timer: Timer;
  private readonly backoff: Backoff;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly stableAfterMs: number;
  private connection: DaemonConnection | undefined;
  private document: StatusDocument | undefined;
  private attempt: Promise<void> | undefined; // the connection attempt under way
  private retry: unknown;
  private pinger: unknown;
  private stable: unknown;
  private disposed = false;
  private lastReason = 'not connected yet';

  constructor(options: ControllerOptions) {
    this.socketPath = options.socketPath;
    this.bar = options.statusBar;
    this.ui = options.ui;
    this.timer = options.timer ?? realTimer;
    this.backoff = new Backoff(250, options.maxDelayMs ?? 5000);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.pingIntervalMs = options.pingIntervalMs ?? 15000;
    this.stableAfterMs = options.stableAfterMs ?? 5000;
  }

  /** The latest status document, while subscribed. */
  get status(): StatusDocument | undefined {
    return this.document;
  }

  get connected(): boolean {
    return this.connection !== undefined && this.document !== undefined;
  }

  /** Starts connecting; the status bar follows from then on. */
  start(): void {
    void this.connect();
  }

  /** The `reconnect` command: tries again at once instead of waiting for the next attempt. A
   * connection without a document yet is dropped first: the daemon accepted it but does not
   * answer (a failed ping has closed its connection already). */
  async reconnect(): Promise<void> {
    if (this.connected) {
      return;
    }
    this.connection?.dispose(); // its subscribe fails now, which ends the attempt under way
    this.connection = undefined;
    await this.attempt;
    if (!this.connected) {
      this.backoff.reset();
      await this.connect();
    }
  }

  dispose(): void {
    this.disposed = true;
    this.cancelTimers();
    this.connection?.dispose();
    this.connection = undefined;
  }

  // -- the connection ------------------------------------------------------------------

  /** Connects and subscribes; a second caller waits for the attempt under way. */
  private connect(): Promise<void> {
    this.attempt ??= this.attemptConnection().finally(() => (this.attempt = undefined));
    return this.attempt;
  }

  private async attemptConnection(): Promise<void> {
    if (this.disposed) {
      return;
    }
    this.cancelTimers();
    let connection: DaemonConnection | undefined;
    try {
      connection = await DaemonConnection.open(this.socketPath, this.connectTimeoutMs, this.requestTimeoutMs);
      if (this.disposed) {
        connection.dispose();
        return;
      }
      this.connection = connection;
      const opened = connection;
      // Also when a request goes unanswered: the subscribe, a ping, a command.
      connection.onClose((reason) => this.lost(opened, reason));
      await connection.subscribe((doc) => this.show(opened, doc));
      if (opened !== this.connection) {
        return; // disposed meanwhile
      }
      this.lastReason = '';
      this.ui.log(`connected to the daemon on ${this.socketPath}`);
      // Not at once: a daemon that crashes right after answering would be retried every 250 ms.
      this.stable = this.timer.setTimeout(() => this.backoff.reset(), this.stableAfterMs, 'stable');
      this.schedulePing(opened);
      void this.checkApiVersion(connection);
    } catch (err) {
      this.lost(connection, err instanceof NotConnectedError ? err.reason : errorText(err));
    }
  }

  /** A daemon that stops answering (stopped, stuck) keeps its socket open: only a request left
   * unanswered tells, so one is sent every `pingIntervalMs`. Unanswered, it closes the
   * connection, and `lost` shows the unreachable item. */
  private schedulePing(connection: DaemonConnection): void {
    this.pinger = this.timer.setTimeout(
      () => {
        this.pinger = undefined;
        const again = (): void => {
          if (connection === this.connection) {
            this.schedulePing(connection);
          }
        };
        // Unanswered, the ping has closed the connection: `lost` has run, and `again` stops.
        void connection.call('daemon.ping').then(again, again);
      },
      this.pingIntervalMs,
      'ping',
    );
  }

  private show(from: DaemonConnection, doc: StatusDocument): void {
    if (from === this.connection && !this.disposed) {
      this.document = doc;
      this.bar.render(itemsFor(doc));
    }
  }

  /** The connection failed or closed: show the unreachable item and schedule the next try.
   * A report about a connection that is no longer the current one (a close after a failed
   * request on it has already been handled) is ignored. */
  private lost(connection: DaemonConnection | undefined, reason: string): void {
    if (this.disposed || connection !== this.connection) {
      return;
    }
    connection?.dispose();
    this.connection = undefined;
    this.document = undefined;
    if (reason !== this.lastReason) {
      this.ui.log(`daemon unreachable on ${this.socketPath}: ${reason}`);
      this.lastReason = reason;
    }
    this.bar.render(unreachableItems(this.socketPath, reason));
    this.cancelTimers();
    this.retry = this.timer.setTimeout(() => void this.connect(), this.backoff.next(), 'retry');
  }

  private cancelTimers(): void {
    for (const handle of [this.retry, this.pinger, this.stable]) {
      if (handle !== undefined) {
        this.timer.clearTimeout(handle);
      }
    }
    this.retry = this.pinger = this.stable = undefined;
  }

  /** Warns in the output channel when the daemon speaks another API version. */
  private async checkApiVersion(connection: DaemonConnection): Promise<void> {
    try {
      const info = await connection.call<DaemonInfo>('daemon.info');
      if (info.apiVersion !== API_VERSION) {
        this.ui.log(
          `warning: the daemon (simpleaided ${info.version}) speaks API version ${info.apiVersion}, ` +
            `this extension speaks ${API_VERSION}: update the one that is behind`,
        );
      }
    } catch {
      // The connection closed meanwhile: `lost` has said so already.
    }
  }

  // -- the commands --------------------------------------------------------------------

  /** Runs: the 30 newest in a quick pick; the one picked, with its steps, in the output. */
  showRuns(): Promise<void> {
    return this.command(async (connection) => {
      const page = await connection.call<RunPage>('runs.list', { limit: RUNS_SHOWN });
      if (!page.runs.length) {
        this.ui.showInfo('No runs yet');
        return;
      }
      const picked = await this.ui.showQuickPick(runPickItems(page.runs), 'Runs, newest first');
      if (picked === undefined) {
        return;
      }
      const run = await this.current().call<RunView>('runs.get', { runId: picked.value, steps: true });
      this.ui.showOutput(`Run ${run.id}`, runLines(run));
    });
  }

  /** The vault: locks it when unlocked, asks the passphrase and unlocks it when locked. */
  toggleVault(): Promise<void> {
    return this.command(async (connection) => {
      const vault = await connection.call<VaultStatus>('vault.status');
      if (vault.state === 'unlocked') {
        await connection.call<VaultStatus>('vault.lock');
      } else if (vault.state === 'locked') {
        const passphrase = await this.ui.askPassphrase('SimpleAide vault passphrase');
        if (passphrase) {
          await this.current().call<VaultStatus>('vault.unlock', { passphrase }, UNLOCK_TIMEOUT_MS);
        }
      } else {
        this.ui.showInfo('No vault yet: run simpleaide vault init in a terminal');
      }
    });
  }

  /** The LLM backends as a table in the output channel. */
  showLlm(): Promise<void> {
    return this.command(async (connection) => {
      const llm = await connection.call<LlmSection>('llm.status');
      this.ui.showOutput('LLM backends', llmTable(llm));
    });
  }

  /** The latest status document, in words, in the output channel. */
  showStatus(): Promise<void> {
    return this.command(async () => {
      const doc = this.document;
      if (doc === undefined) {
        throw new NotConnectedError(this.socketPath, this.lastReason);
      }
      this.ui.showOutput('Status', statusLines(doc));
    });
  }

  /** The connection, or `NotConnectedError`. */
  private current(): DaemonConnection {
    if (this.connection === undefined || !this.connection.isOpen) {
      throw new NotConnectedError(this.socketPath, this.lastReason);
    }
    return this.connection;
  }

  /** Runs a command; every failure becomes one error message, never an exception. */
  private async command(body: (connection: DaemonConnection) => Promise<void>): Promise<void> {
    try {
      await body(this.current());
    } catch (err) {
      if (err instanceof NotConnectedError) {
        this.ui.showError(
          `No daemon answers on ${err.socketPath} (${err.reason}). ` +
            'Start it with: simpleaide daemon start',
        );
      } else {
        // A DaemonError's message is the daemon's own words ("wrong passphrase").
        this.ui.showError(errorText(err));
      }
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
